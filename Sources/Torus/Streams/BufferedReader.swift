#if canImport(Glibc)
import Glibc
#endif

/// Reads a ``ByteStream`` by frames: exact counts, up to a delimiter, lines, length-prefixed
/// frames, or frames of a ``FrameDecoder`` of your own. Bounded, and with no copy where it
/// can be.
///
/// ```swift
/// try await server.run { connection in
///     let reader = BufferedReader(connection)
///     while let line = try await reader.readLine() {
///         try await connection.send(line.uppercased() + "\n")
///     }
/// }
/// ```
///
/// The reader takes what the stream receives and keeps what it has not handed out yet for
/// the next read, so once you read a stream through a reader, read it only through that
/// reader (its ``receive(timeout:isolation:)`` hands out what it holds first). Writing goes
/// to the stream directly.
///
/// Frames that lie within one received buffer are parsed where they are: the copying reads
/// copy each frame once, and ``withNextFrame(_:timeout:isolation:_:)`` lends it with no copy
/// at all. Only a frame that spans receives is gathered into the reader's own buffer, which
/// grows to the largest such frame and is then reused.
///
/// A reader is not `Sendable`: use it from the task (and isolation) that made it, such as a
/// `Server` handler isolated to its connection. Every read takes the isolation of its
/// caller, so on a connection's own loop a read costs no thread hop.
public final class BufferedReader<Stream: ByteStream> {
    /// The stream this reader reads.
    public let stream: Stream

    /// The received buffer being parsed in place, and how much of it is consumed. Only
    /// while `gathered` is empty: bytes are never split between the two.
    private var chunk: ReceivedBytes?
    private var chunkBytes = UnsafeRawBufferPointer(start: nil, count: 0)
    private var chunkOffset = 0
    /// Bytes of a frame that spans receives, gathered from several of them.
    private var gathered = GatherBuffer()
    private var reachedEnd = false
    /// Set while a read runs: a second one (from a frame's body, or another task isolated
    /// like this one) would interleave with it.
    private var isReading = false

    /// A reader of `stream`, holding nothing yet.
    public init(_ stream: Stream) {
        self.stream = stream
    }

    /// The number of bytes the reader holds: received, not handed out yet.
    public var bufferedCount: Int {
        gathered.count + chunkBytes.count - chunkOffset
    }

    // MARK: Frames

    /// The next frame of `framing`, copied into an array; nil at end of stream before
    /// another frame begins.
    ///
    /// - Parameters:
    ///   - framing: How frames are cut: ``Framing/line(maxLength:)``,
    ///     ``Framing/lengthPrefixed(width:byteOrder:maxLength:)``, …
    ///   - timeout: How long the whole read may take; nil for the stream's read timeout on
    ///     each receive.
    ///   - isolation: Where the read runs: the caller's isolation, left to its default.
    /// - Throws: ``TorusError/Kind/frameTooLong``, ``TorusError/Kind/truncatedFrame`` when the
    ///   stream ends inside a frame, ``TorusError/Kind/timedOut``, and what the stream's
    ///   receive throws.
    public func readFrame(
        _ framing: Framing, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> [UInt8]? {
        try await nextFrame(framing, timeout: timeout) { Array($0) }
    }

    /// Lends every frame of `framing` to `body` in turn, with no copy, until end of stream.
    /// The bytes are valid only until `body` returns, and `body` runs isolated like the
    /// caller, so it may write them:
    ///
    /// ```swift
    /// try await reader.forEachFrame(.line()) { line in
    ///     try await connection.write(line)          // echo each line, no copy
    ///     try await connection.write("\n")
    /// }
    /// ```
    ///
    /// - Throws: as ``withNextFrame(_:timeout:isolation:_:)``; the frames before the error
    ///   were handed to `body`.
    public func forEachFrame(
        _ framing: Framing, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: (UnsafeRawBufferPointer) async throws -> Void
    ) async throws {
        while try await withNextFrame(framing, timeout: timeout, body) != nil {}
    }

    /// Lends the next frame of `framing` to `body`, with no copy, and returns what `body`
    /// returns; nil at end of stream before another frame begins. The bytes are valid only
    /// until `body` returns, and `body` runs isolated like the caller, so it may write them.
    /// To handle every frame so, use ``forEachFrame(_:timeout:isolation:_:)``.
    ///
    /// ```swift
    /// let count = try await reader.withNextFrame(.lengthPrefixed(width: 2, maxLength: 512)) { $0.count }
    /// ```
    ///
    /// - Throws: as ``readFrame(_:timeout:isolation:)``, and what `body` throws (the frame
    ///   counts as read either way). Reading from this reader inside `body` throws
    ///   ``TorusError/Kind/concurrentRead``.
    public func withNextFrame<Result>(
        _ framing: Framing, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: (UnsafeRawBufferPointer) async throws -> Result
    ) async throws -> Result? {
        try begin()
        defer { isReading = false }
        guard let (payload, consumed) = try await locate(framing, timeout: timeout) else { return nil }
        defer { consume(consumed) }
        // Made afresh from its address, so that the compiler sees a value of its own, not
        // part of this reader's state: `body` runs isolated like the caller anyway, and the
        // bytes stay put until it returns (nothing else reads this reader meanwhile).
        let frame = UnsafeRawBufferPointer(rebasing: unread[payload])
        let address = Int(bitPattern: frame.baseAddress)
        return try await body(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: frame.count))
    }

    /// The next frame `decoder` decodes; nil at end of stream before another frame begins.
    ///
    /// - Throws: what `decoder` throws, ``TorusError/Kind/frameTooLong`` past its
    ///   ``FrameDecoder/maxFrameLength``, ``TorusError/Kind/truncatedFrame``, and what the
    ///   stream's receive throws.
    public func readFrame<Decoder: FrameDecoder>(
        using decoder: inout Decoder, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> Decoder.Frame? {
        try begin()
        defer { isReading = false }
        var frame: Decoder.Frame?
        guard let (_, consumed) = try await locate(limit: decoder.maxFrameLength, timeout: timeout, { bytes, atEnd in
            guard !bytes.isEmpty else { return nil }
            var found = try decoder.decode(bytes)
            if found == nil, atEnd { found = try decoder.decodeLast(bytes) }
            guard let decoded = found else { return nil }
            guard decoded.consumed > 0, decoded.consumed <= bytes.count else {
                throw TorusError(.invalidArgument, operation: .read, detail: "\(Decoder.self) consumed \(decoded.consumed) of \(bytes.count) bytes")
            }
            frame = decoded.frame
            return (0..<decoded.consumed, decoded.consumed)
        }) else { return nil }
        consume(consumed)
        return frame
    }

    // MARK: Common framings

    /// The next line (ended by `\n` or `\r\n`, which it does not include), decoded as UTF-8;
    /// nil at end of stream. Bytes after the last line ending make one last line.
    ///
    /// - Throws: ``TorusError/Kind/frameTooLong`` for a line over `maxLength` bytes, and what
    ///   the stream's receive throws.
    public func readLine(
        maxLength: Int = 64 * 1024, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> String? {
        try await nextFrame(.line(maxLength: maxLength), timeout: timeout) { String(decoding: $0, as: UTF8.self) }
    }

    /// Exactly `count` bytes; nil if the stream ends before the first of them.
    ///
    /// - Throws: ``TorusError/Kind/truncatedFrame`` if it ends after some, and what the
    ///   stream's receive throws.
    public func readExactly(
        _ count: Int, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> [UInt8]? {
        try await readFrame(.exactly(count), timeout: timeout)
    }

    /// The bytes up to and including the first `delimiter`; nil at end of stream before
    /// another byte.
    ///
    /// - Throws: ``TorusError/Kind/frameTooLong`` when no delimiter ends within `maxLength`
    ///   bytes, ``TorusError/Kind/truncatedFrame`` when the stream ends first, and what the
    ///   stream's receive throws.
    public func readUntil(
        _ delimiter: [UInt8], maxLength: Int = 64 * 1024, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> [UInt8]? {
        try await readFrame(.delimited(by: delimiter, keepingDelimiter: true, maxLength: max(0, maxLength - delimiter.count)), timeout: timeout)
    }

    /// The bytes up to and including the first `delimiter` byte. See ``readUntil(_:maxLength:timeout:isolation:)-([UInt8],_,_,_)``.
    public func readUntil(
        _ delimiter: UInt8, maxLength: Int = 64 * 1024, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> [UInt8]? {
        try await readUntil([delimiter], maxLength: maxLength, timeout: timeout)
    }

    // MARK: Unframed

    /// What the reader holds, or else the stream's next received bytes, with no copy where
    /// they are still in a receive buffer; nil at end of stream.
    public func receive(timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation) async throws -> ReceivedBytes? {
        try begin()
        defer { isReading = false }
        if gathered.count > 0 {
            let bytes = ReceivedBytes(copying: gathered.bytes)
            gathered.removeAll()
            return bytes
        }
        if let bytes = chunk.take() {
            let rest = bytes.droppingFirst(chunkOffset)
            dropChunk()
            return rest
        }
        if reachedEnd { return nil }
        guard let bytes = try await stream.receive(timeout: timeout) else {
            reachedEnd = true
            return nil
        }
        return bytes
    }

    /// Appends the bytes the reader holds, or else the next ones received, at most
    /// `maxBytes`, to `buffer`; returns how many (0 at end of stream). What does not fit
    /// stays for the next read.
    public func read(
        appendingTo buffer: inout [UInt8], maxBytes: Int = 64 * 1024, timeout: Duration? = nil,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Int {
        guard maxBytes > 0 else { return 0 }
        if bufferedCount == 0, !reachedEnd {
            try begin()
            defer { isReading = false }
            try await fill(deadline: timeout.map { ContinuousClock.now + $0 }, timeout: timeout)
        }
        let count = min(maxBytes, bufferedCount)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: unread[..<count]))
        consume(count)
        return count
    }

    // MARK: Reading

    private func nextFrame<Result>(
        _ framing: Framing, timeout: Duration?, isolation: isolated (any Actor)? = #isolation,
        _ copy: (UnsafeRawBufferPointer) -> Result
    ) async throws -> Result? {
        try begin()
        defer { isReading = false }
        guard let (payload, consumed) = try await locate(framing, timeout: timeout) else { return nil }
        let result = copy(UnsafeRawBufferPointer(rebasing: unread[payload]))
        consume(consumed)
        return result
    }

    private func begin() throws {
        guard !isReading else {
            throw TorusError(.concurrentRead, operation: .read, detail: "this BufferedReader is already reading (from another task, or inside a frame's body)")
        }
        isReading = true
    }

    /// The bytes held and not handed out: the rest of the chunk, or the gathered bytes.
    private var unread: UnsafeRawBufferPointer {
        gathered.count > 0 ? gathered.bytes : UnsafeRawBufferPointer(rebasing: chunkBytes[chunkOffset...])
    }

    /// Receives until `find` finds a frame in the unread bytes; returns where it is, or nil
    /// at end of stream with nothing unread.
    private func locate(
        limit: Int, timeout: Duration?, isolation: isolated (any Actor)? = #isolation,
        _ find: (UnsafeRawBufferPointer, _ atEnd: Bool) throws -> (payload: Range<Int>, consumed: Int)?
    ) async throws -> (payload: Range<Int>, consumed: Int)? {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let bytes = unread
            if let found = try find(bytes, reachedEnd) { return found }
            guard try mayHoldFrame(bytes, limit: limit) else { return nil }
            try await fill(deadline: deadline, timeout: timeout)
        }
    }

    /// `locate(limit:timeout:_:)` for a `Framing`, without a closure: a closure capturing the
    /// framing, passed to an async function, cost a heap allocation per frame.
    private func locate(
        _ framing: Framing, timeout: Duration?, isolation: isolated (any Actor)? = #isolation
    ) async throws -> (payload: Range<Int>, consumed: Int)? {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let bytes = unread
            if let found = try framing.frame(in: bytes, atEnd: reachedEnd) { return found }
            guard try mayHoldFrame(bytes, limit: framing.maxLength) else { return nil }
            try await fill(deadline: deadline, timeout: timeout)
        }
    }

    /// After no frame was found in `bytes` (the unread bytes): false at a clean end of
    /// stream, true when receiving more may complete one; throws when it cannot.
    private func mayHoldFrame(_ bytes: UnsafeRawBufferPointer, limit: Int) throws(TorusError) -> Bool {
        if reachedEnd {
            guard bytes.count == 0 else {
                throw TorusError(.truncatedFrame, operation: .read, detail: "the stream ended after \(bytes.count) bytes of an unfinished frame")
            }
            return false
        }
        // A frame (framing included) can take a little more than its payload's limit; past
        // that much, no frame is coming that the limit allows.
        if bytes.count > limit &+ 16 {
            throw TorusError(.frameTooLong, operation: .read, detail: "\(bytes.count) bytes held and still no whole frame; the limit is \(limit)")
        }
        return true
    }

    /// Receives once more: the bytes become the chunk (nothing was unread) or join the
    /// gathered ones; end of stream is remembered.
    private func fill(deadline: ContinuousClock.Instant?, timeout: Duration?, isolation: isolated (any Actor)? = #isolation) async throws {
        var remaining: Duration?
        if let deadline {
            remaining = deadline - .now
            if remaining! <= .zero {
                throw TorusError(.timedOut, operation: .read, errno: ETIMEDOUT, detail: "no whole frame within \(timeout ?? .zero)")
            }
        }
        guard let received = try await stream.receive(timeout: remaining) else {
            reachedEnd = true
            return
        }
        let rest = UnsafeRawBufferPointer(rebasing: chunkBytes[chunkOffset...])
        if gathered.count == 0, rest.count == 0 {
            dropChunk()
            chunkBytes = received.unsafeBytes
            chunk = consume received
            return
        }
        if rest.count > 0 {
            gathered.append(rest)
            dropChunk()
        }
        gathered.append(received.unsafeBytes)
    }

    /// Marks `count` unread bytes as handed out.
    private func consume(_ count: Int) {
        if gathered.count > 0 {
            gathered.removeFirst(count)
        } else {
            chunkOffset += count
            if chunkOffset == chunkBytes.count { dropChunk() }
        }
    }

    /// Gives the chunk's buffer back.
    private func dropChunk() {
        chunk = nil
        chunkBytes = UnsafeRawBufferPointer(start: nil, count: 0)
        chunkOffset = 0
    }
}
