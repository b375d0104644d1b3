import CFuzzTLS
@_spi(Fuzzing) import TorusTLS

/// Property b: boundaries do not matter. A client and a server session, over wires that cut
/// the ciphertext where the input says (one byte, record boundaries, mid-header, several
/// records at once), shake hands and exchange the plaintext the input's writes make, read with
/// the input's buffer sizes. Each side reads exactly what the other wrote, in order, and then
/// end of stream when the other's close_notify arrives; a connection that ends without one
/// ends reading with `truncated`. A flipped ciphertext byte (also the input's choice) never
/// yields wrong plaintext: a flip in a record's body ends in a TLSError; one in a header ends
/// in a TLSError or does no harm at all.
///
/// Input: the configurations (a byte: client in bits 0–2, server in bits 4–7), the flip (a byte:
/// 2 and 3 in bits 0–1 flip a byte going to the server or the client; then its offset, 2
/// bytes, and its mask), then operations until the input runs out (see `operate`), then a
/// drain: both sides read all there is, send close_notify and read to the end.
func sessionPair(_ choices: Choices) {
    let pair = SessionPair(choices)
    pair.handshake()
    while !choices.isExhausted { pair.operate() }
    pair.drain()
    pair.checkEnd()
}

final class SessionPair {
    private let choices: Choices
    private let client: Endpoint
    private let server: Endpoint
    private let toServer: Wire
    private let toClient: Wire

    init(_ choices: Choices) {
        self.choices = choices
        let setup = choices.byte()
        let contexts = FuzzContexts.shared
        let clientChoice = contexts.clients[Int(setup & 7) % contexts.clients.count]
        let serverContext = clientChoice.servers[Int(setup >> 4) % clientChoice.servers.count]
        let flip = choices.byte() & 3
        let (offset, mask) = flip >= 2 ? (choices.uint16(), choices.byte()) : (0, 0)
        toServer = Wire(flipOffset: flip == 2 ? offset : nil, mask: mask)
        toClient = Wire(flipOffset: flip == 3 ? offset : nil, mask: mask)
        do {
            let clientSession = try TLSMemorySession(context: clientChoice.context, serverName: clientChoice.serverName)
            let serverSession = try TLSMemorySession(context: serverContext)
            client = Endpoint("client", side: 0, session: clientSession, incoming: toClient, outgoing: toServer, choices: choices)
            server = Endpoint("server", side: 1, session: serverSession, incoming: toServer, outgoing: toClient, choices: choices)
        } catch {
            fatalError("no session: \(error)")
        }
    }

    /// Whether a flipped byte reached its receiver.
    private var tampered: Bool { toServer.flipDelivered || toClient.flipDelivered }
    private var flippedInBody: Bool {
        (toServer.flipDelivered && toServer.flippedInBody == true) || (toClient.flipDelivered && toClient.flippedInBody == true)
    }
    /// Changes whenever either side or either wire gets anywhere.
    private var progress: [Int] {
        [client.progress, server.progress, toServer.sentCount, toServer.deliveredCount, toClient.sentCount, toClient.deliveredCount]
    }

    /// Handshakes until one side is established (TLS 1.3's client, TLS 1.2's server: the
    /// other completes during the operations, maybe with application data in the same
    /// receive) or both have failed.
    func handshake() {
        for _ in 0..<10_000 {
            let before = progress
            client.handshake()
            server.handshake()
            if client.session.isEstablished || server.session.isEstablished { return }
            if client.failure != nil && server.failure != nil { return }
            if progress == before {
                // Both wait for bytes that will not come: only tampering explains it. The
                // drain ends their connections.
                require(tampered, "the handshake is stuck, and no byte was tampered with")
                return
            }
        }
        fatalError("the handshake goes on and on")
    }

    /// One operation, from the input: a byte whose bit 0 picks the side and bits 1–4 the
    /// operation (writes and reads most often), and for some, a byte of size.
    func operate() {
        let operation = choices.byte()
        let side = operation & 1 == 0 ? client : server
        let queued = operation & 0x20 != 0
        trace("operation \(operation): \(side.name), \((operation >> 1) & 15)")
        switch (operation >> 1) & 15 {
        case 0...5: side.write(size: writeSize(choices.byte()), queued: queued)
        case 6...10: side.read(size: readSize(choices.byte()))
        case 11: side.requestKeyUpdate()
        case 12: side.sendCloseNotify(queued: queued)
        // The connection to `side` ends, without close_notify (after what is under way, or at
        // once, losing it).
        case 13: side.incoming.close(droppingPending: queued)
        default: settle()
        }
    }

    /// Reads what there is on both sides, sends close_notify from both, reads to the end; a
    /// side still waiting after that (its peer failed, or a tampered length promised more)
    /// has its connection end.
    func drain() {
        settle()
        client.sendCloseNotify(queued: choices.byte() & 1 != 0)
        server.sendCloseNotify(queued: choices.byte() & 1 != 0)
        settle()
        for side in [client, server] where !side.isDone {
            side.incoming.close(droppingPending: false)
        }
        settle()
        require(client.isDone && server.isDone, "a side neither ended nor failed after its connection ended")
    }

    /// Lets both sides read (and handshake) until neither gets anywhere.
    private func settle() {
        for _ in 0..<100_000 {
            let before = progress
            client.advance(readSize: readSize(choices.byte()))
            server.advance(readSize: readSize(choices.byte()))
            if progress == before { return }
        }
        fatalError("the sessions keep reading and never settle")
    }

    /// Checks how each side ended against what reached it.
    func checkEnd() {
        trace("pair: TLS 1.\(client.session.protocolVersion.map { $0 - 10 } ?? 0), flipped: \(toServer.flippedInBody.map { "to the server, in a \($0 ? "body" : "header")" } ?? toClient.flippedInBody.map { "to the client, in a \($0 ? "body" : "header")" } ?? "no"), delivered: \(tampered)")
        for side in [client, server] {
            trace("  \(side.name): wrote \(side.written), read \(side.received), \(side.readEnd.map { "\($0)" } ?? "reading"); received \(side.incoming.deliveredCount) of \(side.incoming.sentCount) ciphertext bytes")
        }
        let failed = client.failure != nil || server.failure != nil
        if tampered && failed { return }   // a TLSError (of a possible kind) is the answer to tampering
        require(!flippedInBody, "a byte flipped in a record's body was delivered, and neither side noticed")
        // Nothing tampered with, or a header byte whose change did no harm.
        for (side, peer) in [(client, server), (server, client)] {
            let closeNotifyArrived = peer.closeNotifyEnd.map { side.incoming.deliveredCount >= $0 } ?? false
            if closeNotifyArrived {
                guard case .endOfStream = side.readEnd else {
                    fatalError("\(side.name) got \(peer.name)'s close_notify, but ended with \(String(describing: side.readEnd))")
                }
                require(side.received == peer.written, "\(side.name) read \(side.received) of the \(peer.written) bytes \(peer.name) wrote")
            } else {
                guard case .failed(let error) = side.readEnd else {
                    fatalError("\(side.name) read end of stream, but \(peer.name)'s close_notify never reached it")
                }
                // Its connection ended early (truncated), or the peer failed and said so.
                require(error.kind == .truncated || (error.kind == .alertReceived && peer.failure != nil),
                             "\(side.name)'s connection ended without close_notify, and it failed with \(error)")
            }
        }
    }
}

/// A write's size for the input's `choice`: small, up to a record, around a record's 16 KiB,
/// or several records at once.
func writeSize(_ choice: UInt8) -> Int {
    let x = Int(choice >> 2)   // 0...63
    switch choice & 3 {
    case 0: return 1 + x
    case 1: return 1 + x * 257
    case 2: return 16_384 - 32 + x
    default: return 16_384 * (2 + x % 3) + x
    }
}

/// A read buffer's size for the input's `choice`: a receive's 16 KiB (also once the input is
/// used up), a few bytes, up to a record, or several records.
func readSize(_ choice: UInt8) -> Int {
    let x = Int(choice >> 2)
    switch choice & 3 {
    case 0: return 16 * 1024
    case 1: return 1 + x
    case 2: return 1 + x * 260
    default: return 64 * 1024
    }
}
