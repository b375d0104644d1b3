/// What one TLS connection does on top of its ``ConnectionPlan``: the highest protocol version
/// it offers, and whether it misbehaves at the TLS level. Drawn from the run's seed and the
/// connection's serial number alone (a random stream of its own, so the rest of the plan is
/// the one the same seed gives on a plaintext target).
struct TLSPlan {
    /// The TLS-level behaviour. `honest` runs a full handshake, the plan's messages and its
    /// ending (close and half-close with close_notify; resets and cancels without).
    enum Misbehaviour: String, CaseIterable {
        case honest
        /// Plaintext instead of a ClientHello (an HTTP request, or random bytes), then waits
        /// for the server to close.
        case garbage = "plaintext garbage"
        /// A real handshake cut at a random byte of one of the client's flights, then a close
        /// or a reset.
        case cutHandshake = "handshake cut"
        /// A real handshake that stops at a random byte (nothing, part of the ClientHello, all
        /// of it, part of the second flight) and then waits: the server's handshake timeout
        /// must close it.
        case stuckHandshake = "handshake never finished"
        /// Every byte echoed, then a plain close with no close_notify.
        case noCloseNotify = "close without close_notify"
        /// TLS 1.2 only: after the first message came back, asks to renegotiate (which the
        /// server refuses), then carries on if the connection does.
        case renegotiate = "renegotiation"
    }

    let misbehaviour: Misbehaviour
    /// Offers TLS 1.2 at most (otherwise 1.2 and 1.3, so 1.3 is negotiated).
    let tls12Only: Bool
    /// For a cut or stuck handshake: the client flight it stops in (1: the ClientHello; 2:
    /// the flight after the server's), and where in it, as a random number reduced modulo the
    /// flight's length once that is known.
    let stopFlight: Int
    let stopPoint: UInt64
    /// For a cut handshake: a reset (`SO_LINGER` 0) rather than a plain close.
    let resetAfterCut: Bool
    /// For plaintext garbage: an HTTP request rather than random bytes, and how many bytes.
    let garbageIsHTTP: Bool
    let garbageLength: Int

    init(serial: Int, seed: UInt64, mix: SoakOptions.TLSMix) {
        var random = SplitMix64(seed: SplitMix64.derive(seed, stream: 4, index: serial))
        let roll = Int.random(in: 0..<100, using: &random)
        var bound = 0
        var chosen = Misbehaviour.honest
        for (kind, percent) in [(Misbehaviour.garbage, mix.garbage), (.cutHandshake, mix.cutHandshake),
                                (.stuckHandshake, mix.stuckHandshake), (.noCloseNotify, mix.noCloseNotify),
                                (.renegotiate, mix.renegotiate)] {
            bound += percent
            if roll < bound {
                chosen = kind
                break
            }
        }
        misbehaviour = chosen
        tls12Only = chosen == .renegotiate || random.chance(mix.tls12)
        stopFlight = Bool.random(using: &random) ? 1 : 2
        stopPoint = random.next()
        resetAfterCut = Bool.random(using: &random)
        garbageIsHTTP = Bool.random(using: &random)
        garbageLength = random.logUniform(in: 1...16 * 1024)
    }

    /// Whether the connection gets past the handshake and moves the plan's messages.
    var movesData: Bool {
        switch misbehaviour {
        case .honest, .noCloseNotify, .renegotiate: true
        case .garbage, .cutHandshake, .stuckHandshake: false
        }
    }

    var summary: String {
        var parts = [tls12Only ? "TLS 1.2" : "TLS 1.2-1.3", misbehaviour.rawValue]
        switch misbehaviour {
        case .garbage: parts.append("\(garbageLength) B of \(garbageIsHTTP ? "HTTP" : "random bytes")")
        case .cutHandshake: parts.append("in flight \(stopFlight), then \(resetAfterCut ? "reset" : "close")")
        case .stuckHandshake: parts.append("in flight \(stopFlight)")
        default: break
        }
        return parts.joined(separator: " ")
    }
}
