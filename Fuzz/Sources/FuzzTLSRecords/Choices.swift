#if canImport(Glibc)
import Glibc
#endif

/// The fuzz input, read front to back as a run's choices. Past its end every choice is 0,
/// which each reader takes as its plainest option (deliver all that is pending, read a
/// record's worth), so that a run always ends.
final class Choices {
    private let input: ArraySlice<UInt8>
    private var next: Int

    init(_ input: ArraySlice<UInt8>) {
        self.input = input
        self.next = input.startIndex
    }

    var isExhausted: Bool { next >= input.endIndex }

    func byte() -> UInt8 {
        guard next < input.endIndex else { return 0 }
        defer { next += 1 }
        return input[next]
    }

    func uint16() -> Int { Int(byte()) << 8 | Int(byte()) }
}

/// FNV-1a: a hash that is the same in every process (Swift's `Hasher` is seeded per process),
/// so that an input reports the same coverage whichever process runs it.
func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    return hash
}

/// `precondition`, with its message also in release builds (which fuzzers are): a failed
/// check says what it found.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// With FUZZ_TLS_TRACE set, each run prints how it ended: for looking into one input
/// (`FUZZ_TLS_TRACE=1 FuzzTLSRecords INPUT`), not for fuzzing.
let tracing = getenv("FUZZ_TLS_TRACE") != nil

func trace(_ message: @autoclosure () -> String) {
    if tracing { print(message()) }
}
