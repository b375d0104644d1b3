/// How a client connection ended. The first six are what the client chose; the others are
/// failures of the server under test (or of the loopback path to it).
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

    var isFailure: Bool {
        switch self {
        case .echoed, .halfClosed, .drained, .resetByClient, .cancelledMidWrite, .cancelledMidRead: false
        default: true
        }
    }

    /// Whether the client gave the connection up on purpose, so the bytes in flight need not
    /// come back.
    var isAbandonedByClient: Bool {
        switch self {
        case .resetByClient, .cancelledMidWrite, .cancelledMidRead: true
        default: false
        }
    }
}
