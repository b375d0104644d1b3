extension DatagramSocket: AsyncSequence {
    /// Each received datagram, copied (see ``DatagramSocket/read(timeout:)``).
    public typealias Element = Datagram
    /// Iteration throws what ``DatagramSocket/read(timeout:)`` throws, except that closing
    /// the socket ends it normally.
    public typealias Failure = any Error

    /// An iterator over the datagrams the socket receives, from now until it is closed.
    public nonisolated func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(socket: self)
    }

    /// Iterates the received datagrams; ends when the socket is closed. One iteration at a
    /// time: a second concurrent one throws ``TorusError/Kind/concurrentRead``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let socket: DatagramSocket

        /// The next datagram, or nil once the socket is closed.
        public mutating func next() async throws -> Datagram? {
            try await socket.nextDatagram()
        }

        /// The next datagram, or nil once the socket is closed.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Datagram? {
            try await socket.nextDatagram()
        }
    }
}
