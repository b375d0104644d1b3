import FuzzSupport
import Torus

/// The framings a fuzz input can choose with its first byte, with small limits so that
/// over-long frames are reached.
func framing(_ selector: UInt8, limit: Int) -> Framing {
    switch selector % 8 {
    case 0: .line(maxLength: limit)
    case 1: .delimited(by: [0x0D, 0x0A, 0x00], maxLength: limit)
    case 2: .lengthPrefixed(width: 1, maxLength: limit)
    case 3: .lengthPrefixed(width: 2, byteOrder: .littleEndian, maxLength: limit)
    case 4: .lengthPrefixed(width: 4, maxLength: limit)
    case 5: .lengthPrefixed(width: 8, byteOrder: .littleEndian, maxLength: limit)
    case 6: .exactly(1 + limit % 17)
    default: .delimited(by: [0x7C], maxLength: limit)
    }
}

/// Input: a framing selector, a limit, 8 piece sizes, then the stream's bytes. Every frame a
/// reader hands out is within the limit, and the reader ends with nil or a TorusError of a
/// framing kind, never anything else; the copying and lending reads agree.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(fuzzInput(start, count))
    guard input.count >= 10 else { return 0 }
    let limit = 1 + Int(input[1])
    let chosen = framing(input[0], limit: limit)
    let body = input[10...]
    let sizes = input[2..<10]
    runBlocking {
        var copied: [[UInt8]] = []
        var lent: [[UInt8]] = []
        let copyEnd = await readAll(MemoryStream(pieces(of: body, sizes: sizes)), chosen, limit: limit) { reader in
            try await reader.readFrame(chosen).map { copied.append($0) } != nil
        }
        let lendEnd = await readAll(MemoryStream(pieces(of: body, sizes: sizes)), chosen, limit: limit) { reader in
            try await reader.withNextFrame(chosen) { lent.append(Array($0)) } != nil
        }
        precondition(copied == lent, "copying and lending reads disagree")
        if input[0] % 8 != 6 {
            precondition(copied.allSatisfy { $0.count <= limit }, "a frame over the limit of \(limit)")
        }
        precondition(copyEnd == lendEnd, "copying and lending reads end differently: \(copyEnd) vs \(lendEnd)")
    }
    return 0
}

/// Reads with `next` until it returns false or throws; returns how it ended.
func readAll(_ stream: MemoryStream, _ framing: Framing, limit: Int,
             _ next: (BufferedReader<MemoryStream>) async throws -> Bool) async -> String {
    let reader = BufferedReader(stream)
    do {
        while try await next(reader) {}
        return "end"
    } catch let error as TorusError {
        precondition([.frameTooLong, .truncatedFrame, .malformedFrame].contains(error.kind), "unexpected \(error)")
        return "\(error.kind)"
    } catch {
        preconditionFailure("not a TorusError: \(error)")
    }
}

// The entry point SwiftPM expects of an executable; libFuzzer's own `main` usually wins.
@_cdecl("FuzzFraming_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzOne)
}
