import CoreMetrics

/// The metrics a ``Server`` reports, all with a `listener` dimension (its address):
///
/// | label | kind | what |
/// | --- | --- | --- |
/// | `torus.connections.accepted` | counter | connections handed to a handler |
/// | `torus.connections.active` | meter | connections being served now |
/// | `torus.connections.closed` | counter | connections whose handler ended |
/// | `torus.bytes.received`, `torus.bytes.sent` | counters | bytes, reported once a second and at close |
/// | `torus.connection.errors` | counter, `kind` dimension | handlers ended by an error, by its kind |
/// | `torus.accept.pauses` | counter, `reason` dimension | accepting paused at the connection limit |
///
/// The listener itself counts pauses for want of descriptors (`torus.listener.accept.pauses`).
struct ServerMetrics: Sendable {
    let accepted: Counter
    let active: Meter
    let closed: Counter
    let bytesReceived: Counter
    let bytesSent: Counter
    let limitPauses: Counter
    private let factory: any MetricsFactory
    private let dimensions: [(String, String)]

    init(listener: SocketAddress, factory: any MetricsFactory) {
        let dimensions = [("listener", "\(listener)")]
        self.factory = factory
        self.dimensions = dimensions
        accepted = Counter(label: "torus.connections.accepted", dimensions: dimensions, factory: factory)
        active = Meter(label: "torus.connections.active", dimensions: dimensions, factory: factory)
        closed = Counter(label: "torus.connections.closed", dimensions: dimensions, factory: factory)
        bytesReceived = Counter(label: "torus.bytes.received", dimensions: dimensions, factory: factory)
        bytesSent = Counter(label: "torus.bytes.sent", dimensions: dimensions, factory: factory)
        limitPauses = Counter(label: "torus.accept.pauses", dimensions: dimensions + [("reason", "connection limit")], factory: factory)
    }

    /// Counts a handler that ended with `error`, under the error's kind.
    func recordError(_ error: any Error) {
        let kind: String = switch error {
        case let error as any ConnectionEndingError: error.connectionErrorKind
        case is CancellationError: "cancelled"
        default: "other"
        }
        Counter(label: "torus.connection.errors", dimensions: dimensions + [("kind", kind)], factory: factory).increment()
    }
}
