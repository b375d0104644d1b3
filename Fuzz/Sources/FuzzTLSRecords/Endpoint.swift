import CFuzzTLS
@_spi(Fuzzing) import TorusTLS
#if canImport(Glibc)
import Glibc
#endif

/// What each side writes: a pattern that depends on the position (with a period of 65,521
/// bytes, a prime, longer than any write or read), different for each side, so that a lost,
/// repeated or reordered byte, or one from the wrong side, shows. Made once, as two tables
/// long enough that any write or read is one contiguous slice.
struct Plaintext {
    static let period = 65_521
    private static let tables: [[UInt8]] = [0x00, 0x5A].map { tag in
        (0..<(period + 128 * 1024)).map { offset in
            UInt8(truncatingIfNeeded: (UInt64(offset % period) &* 0x9E37_79B9_7F4A_7C15) >> 56) ^ tag
        }
    }

    /// The `count` bytes at `offset` of what side `side` (0 or 1) writes.
    static func bytes(_ side: Int, at offset: Int, count: Int) -> ArraySlice<UInt8> {
        precondition(count <= 128 * 1024)
        let start = offset % period
        return tables[side][start..<(start + count)]
    }
}

/// One end of an in-memory connection: its session, the wires to and from its peer, how much
/// it wrote and read, and how it ended. Every call moves what the session sent onto the wire
/// and checks the session's bounds; every read checks the plaintext against what the peer
/// wrote.
final class Endpoint {
    /// How reading ended.
    enum ReadEnd {
        case endOfStream
        case failed(TLSError)
    }

    let name: String
    /// Which pattern it writes (0 or 1), and which its peer does.
    let side: Int
    let session: TLSMemorySession
    let incoming: Wire
    let outgoing: Wire
    private let choices: Choices
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// Plaintext bytes written, and read (each checked against the peer's pattern).
    private(set) var written = 0
    private(set) var received = 0
    private(set) var readEnd: ReadEnd?
    /// The error that broke the session: its handshake, a read or a write.
    private(set) var failure: TLSError?
    private(set) var sentCloseNotify = false
    /// Where this side's close_notify ends in the outgoing stream, if it went onto the wire.
    private(set) var closeNotifyEnd: Int?

    init(_ name: String, side: Int, session: TLSMemorySession, incoming: Wire, outgoing: Wire, choices: Choices) {
        self.name = name
        self.side = side
        self.session = session
        self.incoming = incoming
        self.outgoing = outgoing
        self.choices = choices
        var previous = 0
        session.onHandshakeStep = { state in
            // OpenSSL's states and the moves between them, as coverage (see fuzz_tls_note).
            fuzz_tls_note(4 << 40 | UInt64(side) << 32 | UInt64(state))
            fuzz_tls_note(5 << 40 | UInt64(side) << 32 | UInt64(previous) << 16 | UInt64(state))
            previous = state
        }
    }

    deinit { buffer.deallocate() }

    var canRead: Bool { failure == nil && readEnd == nil }
    var canWrite: Bool { failure == nil && !sentCloseNotify }
    /// Whether the side has ended: read to the end, or failed.
    var isDone: Bool { readEnd != nil || failure != nil }
    /// A number that changes whenever the side gets anywhere, to tell a stuck pair.
    var progress: Int { received &* 8 &+ (session.isEstablished ? 1 : 0) &+ (isDone ? 2 : 0) &+ (sentCloseNotify ? 4 : 0) }

    // MARK: Steps

    /// Handshakes as far as the bytes go; true once established.
    @discardableResult
    func handshake() -> Bool {
        guard failure == nil else { return false }
        guard !session.isEstablished else { return true }
        do throws(TLSError) {
            _ = try session.handshake { incoming.receive(choices) }
        } catch {
            fail(error)
        }
        settle()
        return session.isEstablished
    }

    /// What a stream's next step is: the handshake until it completes, then a read.
    func advance(readSize: Int) {
        guard canRead, handshake() else { return }
        read(size: readSize)
    }

    /// One read with a buffer of `size` bytes.
    func read(size: Int) {
        guard canRead, handshake() else { return }
        let into = UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(size, buffer.count)])
        do throws(TLSError) {
            switch try session.read(into: into, { incoming.receive(choices) }) {
            case .bytes(let count):
                trace("\(name) read \(count) bytes")
                checkPlaintext(UnsafeRawBufferPointer(rebasing: into[..<count]))
            case .endOfStream:
                trace("\(name) read end of stream")
                readEnd = .endOfStream
            case .waiting:
                break
            }
        } catch {
            fail(error)
        }
        settle()
    }

    /// Writes `size` bytes of this side's pattern, up to 256 KiB in all: many records, and a
    /// run that stays short.
    func write(size: Int, queued: Bool) {
        guard canWrite, handshake(), written < 256 * 1024 else { return }
        let plaintext = Plaintext.bytes(side, at: written, count: size)
        // withUnsafeBytes rethrows untyped errors: the TLSError comes out as a Result.
        let result = plaintext.withUnsafeBytes { bytes in
            Result { () throws(TLSError) in try session.write(bytes, queued: queued) }
        }
        switch result {
        case .success: written += size
        case .failure(let error): fail(error)
        }
        settle()
    }

    func sendCloseNotify(queued: Bool) {
        guard canWrite, handshake() else { return }
        trace("\(name) sends close_notify")
        session.sendCloseNotify(queued: queued)
        sentCloseNotify = true
        let sent = session.takeSent()
        if outgoing.send(sent), !sent.isEmpty { closeNotifyEnd = outgoing.sentCount }
        settle()
    }

    func requestKeyUpdate() {
        guard canWrite, handshake() else { return }
        _ = session.requestKeyUpdate()
        settle()
    }

    // MARK: Checks

    /// Moves what the session sent onto the wire, and checks what the session holds: no more
    /// unconsumed ciphertext than the last receive brought, no output buffer past its bound.
    private func settle() {
        outgoing.send(session.takeSent())
        require(session.bufferedCiphertext <= incoming.lastDelivery,
                     "\(name) holds \(session.bufferedCiphertext) unconsumed bytes; the last receive brought \(incoming.lastDelivery)")
        require(session.outputCapacity <= 64 * 1024, "\(name)'s transport keeps \(session.outputCapacity) bytes of output buffer")
    }

    private func checkPlaintext(_ bytes: UnsafeRawBufferPointer) {
        let expected = Plaintext.bytes(1 - side, at: received, count: bytes.count)
        // memcmp, not a Swift loop: the fuzzer's comparison tracing makes that one slow.
        let equal = expected.withUnsafeBytes { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
        if !equal {
            let index = zip(expected, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            fatalError("\(name) read a wrong byte at offset \(received + index) of the plaintext")
        }
        received += bytes.count
    }

    private func fail(_ error: TLSError) {
        trace("\(name) failed: \(error)")
        checkError(error, of: name)
        fuzz_tls_note(6 << 40 | UInt64(side) << 32 | stableHash("\(error)") & 0xFFFF_FFFF)
        failure = error
        if readEnd == nil { readEnd = .failed(error) }
    }
}
