extension Connection: AsyncSequence {
    /// Each chunk of bytes received, copied (see ``Connection/read(maxBytes:timeout:)``).
    public typealias Element = [UInt8]
    /// Iteration throws what ``Connection/read(maxBytes:timeout:)`` throws, except that
    /// closing the connection ends it normally, as end of stream does.
    public typealias Failure = any Error

    /// An iterator over the chunks the connection receives, until end of stream.
    ///
    /// ```swift
    /// for try await chunk in connection {
    ///     print("\(chunk.count) bytes")
    /// }
    /// ```
    public nonisolated func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(connection: self)
    }

    /// Iterates the received chunks; ends at end of stream or when the connection is
    /// closed. One iteration (or read) at a time: a second concurrent one throws
    /// ``TorusError/Kind/concurrentRead``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: Connection

        /// The next chunk, or nil at end of stream.
        public mutating func next() async throws -> [UInt8]? {
            try await connection.nextChunk()
        }

        /// The next chunk, or nil at end of stream.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> [UInt8]? {
            try await connection.nextChunk()
        }
    }

    func nextChunk() async throws -> [UInt8]? {
        do {
            return try await read()
        } catch let error as TorusError where error.kind == .connectionClosed && !isOpen {
            return nil
        }
    }
}
