extension Connection {
    /// Whether the connection is draining: the ``Server`` serving it has begun a graceful
    /// shutdown.
    ///
    /// While draining, reading ends early: ``receive(timeout:)`` and the `read` methods hand
    /// out the bytes that have already arrived, then return end of stream (nil, or 0) instead
    /// of waiting for more; a read that is waiting when the drain begins returns end of
    /// stream at once. No received byte is dropped, and writes and queued sends go on as
    /// before, so a handler in the middle of an answer finishes it, and a loop such as
    /// `while let bytes = try await connection.receive()` then ends normally. A handler that
    /// keeps going anyway is cancelled at the end of the server's grace period.
    ///
    /// A handler that does work between reads (a long computation, a call to another
    /// service) can look here to stop early. Always false for a connection no server serves.
    public var isDraining: Bool { receiver.isDraining }

    /// Puts the connection in the draining state (see ``isDraining``). Idempotent.
    func beginDraining() {
        receiver.drain()
    }
}
