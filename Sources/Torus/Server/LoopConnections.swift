/// The connections a ``Server`` is serving on one event loop, for its sweeps (closing idle
/// connections and reporting bytes to the metrics) and for draining them at shutdown.
///
/// Lives on its loop: handlers (which run there) register and unregister their connection,
/// and the loop's sweeper task reads the entries there.
final class LoopConnections: @unchecked Sendable {
    // @unchecked Sendable: every method runs on `loop`'s thread (asserted), so `entries` is
    // never touched by two threads.

    private struct Entry {
        let connection: Connection
        /// Bytes received and sent when last looked at, and when that total last changed.
        var received: UInt64 = 0
        var sent: UInt64 = 0
        var lastActivity: ContinuousClock.Instant
    }

    let loop: EventLoop
    private var entries: [ObjectIdentifier: Entry] = [:]
    /// Set by `drain()`: connections registered afterwards start out draining.
    private var isDraining = false

    init(loop: EventLoop) {
        self.loop = loop
    }

    func register(_ connection: isolated Connection) {
        loop.assertInEventLoop()
        entries[ObjectIdentifier(connection)] = Entry(connection: connection, lastActivity: .now)
        // A handler that starts after the drain went by (accepted just before the shutdown)
        // drains too.
        if isDraining { connection.beginDraining() }
    }

    /// Puts every connection registered now, and every one registered later, in the draining
    /// state (``Connection/isDraining``): the server is shutting down.
    func drain() {
        loop.assertInEventLoop()
        guard !isDraining else { return }
        isDraining = true
        for entry in entries.values {
            entry.connection.assumeIsolated { $0.beginDraining() }
        }
    }

    /// Forgets `connection`; returns the bytes it moved since the last sweep.
    func unregister(_ connection: isolated Connection) -> (received: UInt64, sent: UInt64) {
        loop.assertInEventLoop()
        guard let entry = entries.removeValue(forKey: ObjectIdentifier(connection)) else { return (0, 0) }
        return (connection.bytesReceived &- entry.received, connection.bytesSent &- entry.sent)
    }

    /// Notes what every connection moved since the last sweep. Returns the bytes moved, and
    /// the connections that moved nothing for `idleTimeout` or longer.
    func sweep(idleTimeout: Duration?) -> (received: UInt64, sent: UInt64, idle: [Connection]) {
        loop.assertInEventLoop()
        let now = ContinuousClock.now
        var received: UInt64 = 0
        var sent: UInt64 = 0
        var idle: [Connection] = []
        for key in entries.keys {
            var entry = entries[key]!
            // Connections live on this loop, and this sweep runs here: their state can be read
            // without a hop.
            let (totalReceived, totalSent) = entry.connection.assumeIsolated { ($0.bytesReceived, $0.bytesSent) }
            if totalReceived != entry.received || totalSent != entry.sent {
                received &+= totalReceived &- entry.received
                sent &+= totalSent &- entry.sent
                entry.received = totalReceived
                entry.sent = totalSent
                entry.lastActivity = now
                entries[key] = entry
            } else if let idleTimeout, now - entry.lastActivity >= idleTimeout {
                idle.append(entry.connection)
            }
        }
        return (received, sent, idle)
    }
}
