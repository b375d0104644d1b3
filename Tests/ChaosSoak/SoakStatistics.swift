/// The run's counters, kept by the poll loop as bytes move and connections end.
struct SoakStatistics {
    /// One failed connection, for the report (the first few are kept).
    struct Failure {
        let outcome: Outcome
        let plan: String
        let detail: String
        let atSeconds: Double
    }

    var connectionsStarted = 0
    var bytesSent = 0
    var bytesVerified = 0
    var bytesCorrupted = 0
    /// Sent on connections the client did not give up on, and never came back.
    var bytesLost = 0
    /// Sent on connections the client reset or cancelled, and not read back before that.
    var bytesAbandoned = 0
    var outcomes: [Outcome: Int] = [:]
    var failures: [Failure] = []
    var failureCount = 0
    var slowReaders = 0
    var stalledWriters = 0
    var stallsTaken = 0
    var pipelined = 0
    var messagesCompleted = 0
    // Over TLS:
    var tlsPlans: [TLSPlan.Misbehaviour: Int] = [:]
    var tls12Offered = 0
    var tlsHandshakes = 0
    var tls12Handshakes = 0
    var tls13Handshakes = 0
    var renegotiationsAttempted = 0
    /// The server accepted a renegotiation (Torus refuses them: expected 0, but not a failure).
    var renegotiationsContinued = 0
    var renegotiationsNotStarted = 0
    var garbageCloseTimes = CloseTimes()
    var stuckCloseTimes = CloseTimes()

    static let keptFailures = 20

    var connectionsEnded: Int { outcomes.values.reduce(0, +) }

    mutating func record(_ outcome: Outcome, plan: ConnectionPlan, sent: Int, received: Int, detail: String, at seconds: Double) {
        outcomes[outcome, default: 0] += 1
        if outcome.isFailure {
            bytesLost += max(sent - received, 0)
            failureCount += 1
            if failures.count < Self.keptFailures {
                failures.append(Failure(outcome: outcome, plan: plan.summary, detail: detail, atSeconds: seconds))
            }
        } else if outcome.isAbandonedByClient {
            bytesAbandoned += max(sent - received, 0)
        }
    }
}
