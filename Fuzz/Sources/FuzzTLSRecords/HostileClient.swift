import CFuzzTLS
@_spi(Fuzzing) import TorusTLS

/// Property a: whatever a client sends, delivered to a server session in receives whose sizes
/// the input chooses, the session neither crashes nor loops, keeps no more ciphertext than the
/// last receive brought, answers with a bounded amount, and ends in one of two ways: it needs
/// more bytes (having consumed all it was given) or it fails with a TLSError of a kind a peer
/// can cause.
///
/// Input: a byte of flags (bits 0–1: which server context; bit 2: the connection ends after
/// the bytes), 8 receive sizes (in turn; 0 is all that is left), then the client's bytes.
///
/// The seeds Corpus/FuzzTLSRecords/hostile-clienthello* and hostile-certificate12 hold what
/// `openssl s_client` (OpenSSL 3.0) sent, recorded by a relay: a TLS 1.3 ClientHello asking for
/// api.fuzz.test with ALPN h2 and http/1.1, a TLS 1.2 one, and a TLS 1.2 client's ClientHello
/// and Certificate records (an untrusted certificate, for the server that asks for one).
func hostileClient(_ input: ArraySlice<UInt8>) {
    guard input.count >= 9 else { return }
    let flags = input[input.startIndex]
    let sizes = input[(input.startIndex + 1)..<(input.startIndex + 9)]
    var client = HostileBytes(input[(input.startIndex + 9)...], sizes: sizes, ends: flags & 4 != 0)
    let contexts = FuzzContexts.shared.servers
    let server: TLSMemorySession
    do {
        server = try TLSMemorySession(context: contexts[Int(flags & 3) % contexts.count])
    } catch {
        fatalError("no server session: \(error)")
    }
    var previous = 0
    server.onHandshakeStep = { state in
        // OpenSSL's states and the moves between them, as coverage (see fuzz_tls_note).
        fuzz_tls_note(1 << 40 | UInt64(state))
        fuzz_tls_note(2 << 40 | UInt64(previous) << 16 | UInt64(state))
        previous = state
    }
    do throws(TLSError) {
        if try server.handshake({ client.next() }) {
            // A handshake that hostile bytes complete is no crash; what follows must end well too.
            trace("hostile: the handshake completed")
            try readToEnd(server) { client.next() }
        } else {
            trace("hostile: the server waits for more bytes")
            require(client.isUsedUp && !client.ends, "the server waits, yet the client's bytes are not all delivered")
            require(server.bufferedCiphertext == 0, "the server waits for bytes, holding \(server.bufferedCiphertext) it has not consumed")
        }
    } catch {
        trace("hostile: \(error)")
        checkError(error, of: "the server of a hostile client")
        fuzz_tls_note(3 << 40 | stableHash("\(error)") & 0xFFFF_FFFF)
    }
    require(server.bufferedCiphertext <= client.lastDelivery,
                 "the server holds \(server.bufferedCiphertext) unconsumed bytes; the last receive brought \(client.lastDelivery)")
    let answer = server.takeSent().count
    require(answer <= 16 * 1024, "the server answered a hostile client with \(answer) bytes")
    require(server.outputCapacity <= 64 * 1024, "the transport keeps \(server.outputCapacity) bytes of output buffer")
}

/// Reads until the session waits, ends or fails.
private func readToEnd(_ session: TLSMemorySession, _ receive: () -> TLSMemorySession.Arrival) throws(TLSError) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    defer { buffer.deallocate() }
    while case .bytes = try session.read(into: buffer, receive) {}
}

/// The hostile client's bytes, handed out in receives of the input's sizes.
struct HostileBytes {
    private var bytes: ArraySlice<UInt8>
    private let sizes: [UInt8]
    private var nextSize = 0
    let ends: Bool
    private(set) var lastDelivery = 0

    init(_ bytes: ArraySlice<UInt8>, sizes: ArraySlice<UInt8>, ends: Bool) {
        self.bytes = bytes
        self.sizes = Array(sizes)
        self.ends = ends
    }

    var isUsedUp: Bool { bytes.isEmpty }

    mutating func next() -> TLSMemorySession.Arrival {
        guard !bytes.isEmpty else { return ends ? .endOfStream : .nothing }
        let size = sizes[nextSize % sizes.count]
        nextSize += 1
        let count = size == 0 ? bytes.count : min(bytes.count, Int(size))
        defer { bytes = bytes.dropFirst(count) }
        lastDelivery = count
        return .bytes(Array(bytes.prefix(count)))
    }
}
