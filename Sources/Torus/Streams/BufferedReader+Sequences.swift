extension BufferedReader {
    /// The lines the stream carries, as in ``readLine(maxLength:timeout:isolation:)``: ends at
    /// end of stream; a line over `maxLength` bytes ends it with
    /// ``TorusError/Kind/frameTooLong``.
    ///
    /// ```swift
    /// for try await line in reader.lines() { … }
    /// ```
    public func lines(maxLength: Int = 64 * 1024) -> Lines {
        Lines(reader: self, maxLength: maxLength)
    }

    /// The frames of `framing`, copied, as in ``readFrame(_:timeout:isolation:)``.
    public func frames(_ framing: Framing) -> Frames {
        Frames(reader: self, framing: framing)
    }

    /// The frames `decoder` decodes, as in ``readFrame(using:timeout:isolation:)``.
    public func frames<Decoder: FrameDecoder>(using decoder: Decoder) -> DecodedFrames<Decoder> {
        DecodedFrames(reader: self, decoder: decoder)
    }

    /// The lines of a ``BufferedReader``; see ``BufferedReader/lines(maxLength:)``.
    public struct Lines: AsyncSequence {
        /// Each line, decoded as UTF-8, without its ending.
        public typealias Element = String
        /// What the reader's reads throw.
        public typealias Failure = any Error
        let reader: BufferedReader
        let maxLength: Int

        /// An iterator reading the next line on each step.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader, maxLength: maxLength) }

        /// Reads the next line on each step.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let reader: BufferedReader
            let maxLength: Int

            /// The next line; nil at end of stream.
            public mutating func next(isolation actor: isolated (any Actor)?) async throws -> String? {
                try await reader.readLine(maxLength: maxLength)
            }

            /// The next line; nil at end of stream.
            public mutating func next() async throws -> String? {
                try await next(isolation: nil)
            }
        }
    }

    /// The frames of a ``BufferedReader`` by a ``Framing``; see ``BufferedReader/frames(_:)``.
    public struct Frames: AsyncSequence {
        /// Each frame's payload, copied.
        public typealias Element = [UInt8]
        /// What the reader's reads throw.
        public typealias Failure = any Error
        let reader: BufferedReader
        let framing: Framing

        /// An iterator reading the next frame on each step.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader, framing: framing) }

        /// Reads the next frame on each step.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let reader: BufferedReader
            let framing: Framing

            /// The next frame; nil at end of stream.
            public mutating func next(isolation actor: isolated (any Actor)?) async throws -> [UInt8]? {
                try await reader.readFrame(framing)
            }

            /// The next frame; nil at end of stream.
            public mutating func next() async throws -> [UInt8]? {
                try await next(isolation: nil)
            }
        }
    }

    /// The frames a ``FrameDecoder`` decodes; see ``BufferedReader/frames(using:)``.
    public struct DecodedFrames<Decoder: FrameDecoder>: AsyncSequence {
        /// Each frame, as the decoder made it.
        public typealias Element = Decoder.Frame
        /// What the reader's reads and the decoder throw.
        public typealias Failure = any Error
        let reader: BufferedReader
        let decoder: Decoder

        /// An iterator decoding the next frame on each step.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader, decoder: decoder) }

        /// Decodes the next frame on each step.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let reader: BufferedReader
            var decoder: Decoder

            /// The next frame; nil at end of stream.
            public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Decoder.Frame? {
                try await reader.readFrame(using: &decoder)
            }

            /// The next frame; nil at end of stream.
            public mutating func next() async throws -> Decoder.Frame? {
                try await next(isolation: nil)
            }
        }
    }
}

extension ByteStream {
    /// The lines this stream carries (see ``BufferedReader/lines(maxLength:)``), read through a
    /// reader of their own: for a stream read only as lines.
    ///
    /// ```swift
    /// for try await line in connection.lines() {
    ///     try await connection.send(line.uppercased() + "\n")
    /// }
    /// ```
    ///
    /// To read something else after the lines (a body after headers), make a
    /// ``BufferedReader`` and use its `lines` and reads instead: bytes the sequence's reader
    /// took beyond the last line are not handed back to the stream.
    public nonisolated func lines(maxLength: Int = 64 * 1024) -> BufferedReader<Self>.Lines {
        BufferedReader(self).lines(maxLength: maxLength)
    }

    /// The frames of `framing` this stream carries, copied, through a reader of their own (see
    /// ``lines(maxLength:)`` for when to make a ``BufferedReader`` instead).
    public nonisolated func frames(_ framing: Framing) -> BufferedReader<Self>.Frames {
        BufferedReader(self).frames(framing)
    }

    /// The frames `decoder` decodes from this stream, through a reader of their own.
    public nonisolated func frames<Decoder: FrameDecoder>(using decoder: Decoder) -> BufferedReader<Self>.DecodedFrames<Decoder> {
        BufferedReader(self).frames(using: decoder)
    }
}
