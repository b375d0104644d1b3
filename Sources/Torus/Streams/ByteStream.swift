/// A bidirectional stream of bytes: what framing and protocol code needs from a connection.
///
/// ``Connection`` conforms, and so does TorusTLS's `TLSStream`; a test double can too. Code written
/// against `ByteStream` (a ``BufferedReader``, a protocol handler) works over any of them.
///
/// ```swift
/// func greet(_ stream: isolated some ByteStream) async throws {
///     try await stream.send("hello\n")
///     let reader = BufferedReader(stream)
///     while let line = try await reader.readLine() { print(line) }
/// }
/// ```
///
/// What a conforming actor implements is small: a zero-copy receive, a waiting write of a
/// buffer, a queued send, flush, half-close and close. Everything else (owned writes and
/// sends, copying reads) comes from extensions built on those.
public protocol ByteStream: Actor {
    /// The next bytes that arrive, or nil at end of stream (see ``Connection/receive(timeout:)``).
    ///
    /// - Parameter timeout: How long to wait; nil for the stream's own default.
    func receive(timeout: Duration?) async throws -> ReceivedBytes?

    /// Copies the next bytes that arrive into `buffer`, keeping any that do not fit for the
    /// next read (see ``Connection/read(into:timeout:)``).
    ///
    /// - Returns: The number of bytes copied; 0 at end of stream or for an empty `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?) async throws -> Int

    /// Writes `buffer`, returning once every byte is accepted (see
    /// ``Connection/write(_:timeout:)-(UnsafeRawBufferPointer,_)``). `buffer` stays valid
    /// until the call returns; the pointer is not `Sendable`, so call this from code isolated
    /// to the stream.
    func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration?) async throws

    /// Queues `bytes` for sending and returns without waiting for the peer (see
    /// ``Connection/send(_:)-(ReceivedBytes)``): writes and sends go out in the order made.
    func send(_ bytes: consuming ReceivedBytes) async throws

    /// Waits until everything queued by `send` is sent.
    func flush() async throws

    /// Shuts down one direction: after `.write` the peer reads end of stream once it has
    /// everything written before.
    func shutdown(_ direction: ShutdownDirection) async throws

    /// Closes the stream; what is queued goes out first. Closing twice does nothing.
    func close() async
}

extension ByteStream {
    /// The next bytes that arrive, or nil at end of stream, waiting as long as the stream's
    /// own read timeout allows (see ``receive(timeout:)``).
    public func receive() async throws -> ReceivedBytes? {
        try await receive(timeout: nil)
    }

    /// Copies the next bytes that arrive into `buffer`, waiting as long as the stream's own
    /// read timeout allows (see ``read(into:timeout:)``).
    public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        try await read(into: buffer, timeout: nil)
    }

    /// Writes `buffer`, returning once every byte is accepted (see ``write(_:timeout:)-(UnsafeRawBufferPointer,_)``).
    public func write(_ buffer: UnsafeRawBufferPointer) async throws {
        try await write(buffer, timeout: nil)
    }

    /// Writes `bytes`; returns once every byte is accepted.
    public func write(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        // `bytes` is borrowed for the call: its storage stays alive and unchanged until the
        // write returns (as in `Connection.write(_:timeout:)`).
        let buffer = bytes.withUnsafeBytes { $0 }
        try await write(buffer, timeout: timeout)
    }

    /// Writes the UTF-8 bytes of `string`; returns once every byte is accepted.
    public func write(_ string: String, timeout: Duration? = nil) async throws {
        try await write(Array(string.utf8), timeout: timeout)
    }

    /// Queues a copy of `bytes` for sending, as ``ByteStream/send(_:)-(ReceivedBytes)``
    /// queues received bytes: returns once the bytes are queued, waiting only while the
    /// stream's queue is full (for a ``Connection``: past its
    /// ``ConnectionOptions/sendQueueHighWaterMark``) or writers are ahead. Callable from any
    /// task: the bytes are `Sendable`.
    ///
    /// ```swift
    /// try await connection.send("HTTP/1.1 204 No Content\r\n\r\n")
    /// ```
    public func send(_ bytes: [UInt8]) async throws {
        try await send(ReceivedBytes(bytes))
    }

    /// Queues a copy of the UTF-8 bytes of `string`, as ``ByteStream/send(_:)-([UInt8])``.
    public func send(_ string: String) async throws {
        try await send(ReceivedBytes(string.utf8))
    }

    /// Queues a copy of any collection of bytes, as ``ByteStream/send(_:)-([UInt8])``.
    public func send(_ bytes: some Collection<UInt8> & Sendable) async throws {
        try await send(ReceivedBytes(bytes))
    }

    /// Reads the next bytes that arrive, at most `maxBytes`, appending them to `buffer`: for
    /// code that keeps a buffer of its own. Bytes past `maxBytes` stay in the stream for the
    /// next read.
    ///
    /// ```swift
    /// var request: [UInt8] = []
    /// while !request.contains(0x0A), try await connection.read(appendingTo: &request) > 0 {}
    /// ```
    ///
    /// - Returns: The number of bytes appended; 0 at end of stream (or for `maxBytes` 0).
    /// - Throws: what ``ByteStream/read(into:timeout:)`` throws; `buffer` is then unchanged.
    public func read(appendingTo buffer: inout [UInt8], maxBytes: Int = 64 * 1024, timeout: Duration? = nil) async throws -> Int {
        guard maxBytes > 0 else { return 0 }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: maxBytes))
        // `buffer` is inout: nothing else can touch it until this returns, and it was made
        // unique by the append above, so its storage stays where it is across the read.
        let free = buffer.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[start...]) }
        var count = 0
        defer { buffer.removeLast(maxBytes - count) }
        count = try await read(into: free, timeout: timeout)
        return count
    }
}
