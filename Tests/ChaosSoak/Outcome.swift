/// How a client connection ended. The first six, and the TLS ones that follow them, are what
/// the client chose; the others (`FAILED: ...`) are failures of the server under test (or of
/// the loopback path to it).
enum Outcome: String, CaseIterable {
    /// Every byte came back, in order; then the client closed.
    case echoed = "echoed, then closed"
    /// The client half-closed; every byte came back, then end of stream.
    case halfClosed = "half-closed, all echoed, EOF"
    /// Still running when the time was up: finished with a half-close, every byte came back.
    case drained = "drained at the end, all echoed, EOF"
    /// The client reset the connection (`SO_LINGER` 0) part way, as planned.
    case resetByClient = "reset by the client"
    /// The client abandoned the connection part way (plain close), as a cancelled task does.
    case cancelledMidWrite = "cancelled mid-write"
    case cancelledMidRead = "cancelled mid-read"

    // Over TLS (see TLSPlan):
    /// Plaintext garbage instead of a ClientHello; the server closed (or reset) the connection.
    case garbageRejected = "TLS: plaintext garbage, server closed it"
    /// The client cut its handshake at a random byte, then closed, or reset.
    case handshakeCutClosed = "TLS: handshake cut, then closed"
    case handshakeCutReset = "TLS: handshake cut, then reset"
    /// The client stopped part way through the handshake; the server's timeout closed it.
    case stuckHandshakeClosed = "TLS: handshake never finished, server closed"
    /// Every byte came back; then the client closed without close_notify.
    case closedWithoutCloseNotify = "TLS: all echoed, closed without close_notify"
    /// TLS 1.2: the client asked to renegotiate, was refused, and the connection ended.
    case renegotiationRefused = "TLS 1.2: renegotiation refused, ended"

    /// `connect` failed or did not finish within the stall timeout.
    case connectFailed = "FAILED: connect"
    /// The server reset the connection (`ECONNRESET`/`EPIPE`) before the client ended it.
    case resetByServer = "FAILED: reset by the server"
    /// End of stream before every byte sent had come back.
    case earlyEndOfStream = "FAILED: EOF before all bytes came back"
    /// A byte came back that was not the one sent at that offset (or more came back than sent).
    case corrupted = "FAILED: corrupted bytes"
    /// No progress for the stall timeout while waiting on the server.
    case stalled = "FAILED: no progress (stalled)"
    /// Still not finished when the drain time at the end of the run was up.
    case unfinished = "FAILED: not finished by the drain deadline"
    /// A system call on the client side failed unexpectedly (not the server's fault, but the
    /// run cannot vouch for the connection).
    case clientError = "FAILED: client-side error"
    /// An honest TLS handshake failed (verification, an alert, the server closing).
    case handshakeFailed = "FAILED: TLS handshake"
    /// A TLS error after the handshake on a connection that behaved (a bad record, an alert).
    case tlsFailure = "FAILED: TLS error after the handshake"
    /// End of stream with no close_notify where the server should have sent one.
    case missingCloseNotify = "FAILED: end of stream without close_notify"
    /// Plaintext garbage or a stuck handshake still open past the server's handshake timeout.
    case hostileNotClosed = "FAILED: hostile handshake not closed in time"

    var isFailure: Bool {
        switch self {
        case .echoed, .halfClosed, .drained, .resetByClient, .cancelledMidWrite, .cancelledMidRead,
             .garbageRejected, .handshakeCutClosed, .handshakeCutReset, .stuckHandshakeClosed,
             .closedWithoutCloseNotify, .renegotiationRefused: false
        default: true
        }
    }

    /// Whether only a TLS target can end so (the report lists those only for TLS).
    var isTLSOnly: Bool {
        switch self {
        case .garbageRejected, .handshakeCutClosed, .handshakeCutReset, .stuckHandshakeClosed,
             .closedWithoutCloseNotify, .renegotiationRefused, .handshakeFailed, .tlsFailure,
             .missingCloseNotify, .hostileNotClosed: true
        default: false
        }
    }

    /// Whether the client gave the connection up on purpose, so the bytes in flight need not
    /// come back.
    var isAbandonedByClient: Bool {
        switch self {
        case .resetByClient, .cancelledMidWrite, .cancelledMidRead, .handshakeCutClosed, .handshakeCutReset: true
        default: false
        }
    }
}
