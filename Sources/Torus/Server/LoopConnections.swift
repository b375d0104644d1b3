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
        /// The kernel's counts, taken at the first sweep that found the connection's own
        /// counters unchanged; nil while they move.
        var quietSince: SocketSyscalls.KernelProgress?
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
    ///
    /// "Moved" includes what the kernel moves on its own: a slow reader draining the socket's
    /// send buffer, or taking a large `write` piece by piece, leaves the connection's counters
    /// still for as long as it takes, yet it is not idle. So a connection whose counters stop
    /// has the kernel's counts noted once, and when its time is up, is closed only if those
    /// did not move either: one `getsockopt` when it falls quiet, one per timeout after.
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
                entry.quietSince = nil
                entries[key] = entry
            } else if let idleTimeout {
                if entry.quietSince == nil {
                    entry.quietSince = entry.connection.assumeIsolated { $0.kernelProgress() }
                    entries[key] = entry
                }
                guard now - entry.lastActivity >= idleTimeout else { continue }
                let progress = entry.connection.assumeIsolated { $0.kernelProgress() }
                if let progress, progress != entry.quietSince {
                    entry.quietSince = progress
                    entry.lastActivity = now
                    entries[key] = entry
                } else {
                    idle.append(entry.connection)
                }
            }
        }
        return (received, sent, idle)
    }
}
