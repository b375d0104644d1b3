#if canImport(Glibc)
import Glibc
#endif

/// A TCP (or Unix-domain stream) connection.
///
/// A connection is an actor that runs on one ``EventLoop`` for its whole life: its code
/// executes on the loop's thread, where every read and write is an operation of the loop's
/// engine (io_uring or epoll). One task may read while another writes (full duplex); concurrent writes are
/// queued and go out one after another, never interleaved; two concurrent reads are an error.
///
/// ```swift
/// let connection = try await Connection.connect(to: .ipv4(.loopback, port: 7000))
/// try await connection.write("hello\n")
/// while let bytes = try await connection.read() {
///     print(String(decoding: bytes, as: UTF8.self))
/// }
/// await connection.close()
/// ```
///
/// Close a connection when done with it. One that is dropped without ``close()`` is closed
/// when the last reference goes away.
public actor Connection {
    /// The loop this connection lives on.
    public nonisolated let eventLoop: EventLoop
    /// This side's address.
    public nonisolated let localAddress: SocketAddress
    /// The peer's address.
    public nonisolated let remoteAddress: SocketAddress

    nonisolated let fd: CInt
    private let isTCP: Bool
    // `@exclusivity(unchecked)`: checked on every read and write; only the actor (on its loop)
    // touches them, and no access overlaps another to the same property.
    @exclusivity(unchecked) private var isClosed = false
    @exclusivity(unchecked) private var isOutputShutDown = false
    @exclusivity(unchecked) private var isReading = false
    /// Set when the connection was closed for being idle, so that the calls it ended say so.
    @exclusivity(unchecked) private var closedIdleAfter: Duration?
    /// Used by reads and receives that pass no timeout of their own.
    @exclusivity(unchecked) private var readTimeout: Duration?
    /// Used by writes that pass no timeout of their own.
    @exclusivity(unchecked) private var writeTimeout: Duration?
    /// Set when a write ended part-way (failed, timed out or cancelled after some of its
    /// bytes went out): anything written after it would follow a hole in the stream, so every
    /// later write and send fails with this.
    /// (Boxed: a connection pays one pointer for it, not the size of an error.)
    @exclusivity(unchecked) private var brokenWrite: BrokenWrite?
    /// Bytes written by waiting writes (`write(_:)`); the outbox and the receiver count theirs.
    @exclusivity(unchecked) private var bytesWritten: UInt64 = 0
    /// Whether the end of stream, once reached, was a clean one (see `checkEndOfStream`).
    private var endOfStream = EndOfStream.unchecked
    private enum EndOfStream { case unchecked, clean, aborted }
    /// The multishot receive and the bytes it queued for the reader (also drained from
    /// `Connection+Draining.swift`).
    let receiver: Receiver
    /// Who may write now, the writers waiting, and the outbox of ``send(_:)-(ReceivedBytes)``.
    private let output: ConnectionOutput

    /// The connection's event loop, which runs all of its code.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        eventLoop.asUnownedSerialExecutor()
    }

    init(adopting fd: CInt, on eventLoop: EventLoop, localAddress: SocketAddress, remoteAddress: SocketAddress, options: ConnectionOptions) {
        self.fd = fd
        self.eventLoop = eventLoop
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.receiver = Receiver(fd: fd, loop: eventLoop, kind: .stream)
        self.output = ConnectionOutput(fd: fd, loop: eventLoop)
        self.readTimeout = options.readTimeout
        self.writeTimeout = options.writeTimeout
        self.output.sendTimeout = options.writeTimeout
        self.output.highWaterMark = Swift.max(1, options.sendQueueHighWaterMark)
        if case .unix = localAddress { isTCP = false } else { isTCP = true }
    }

    deinit {
        if !isClosed {
            // The receive in flight holds the socket open in the kernel: cancel it first.
            // Queued sends stop too: the descriptor's number may be reused once it closes.
            let receiver = self.receiver
            let output = self.output
            eventLoop.execute {
                receiver.close()
                output.abandon()
            }
            eventLoop.closeDetached(fd)
        }
    }

    /// Runs `body` on the connection's event loop, isolated to the connection: every read
    /// and write inside is a direct call on the loop thread, with no thread hop and no extra
    /// loop turn.
    ///
    /// ```swift
    /// group.addTask {
    ///     await connection.withIsolation { connection in
    ///         while let bytes = try? await connection.receive() {
    ///             try? await bytes.withUnsafeBytes { try await connection.write($0) }
    ///         }
    ///         await connection.close()
    ///     }
    /// }
    /// ```
    ///
    /// This is the fast way to write a handler: `body` runs isolated to the connection, in a
    /// task that prefers the connection's loop, so each operation is one loop turn and no
    /// other thread takes part.
    public nonisolated func withIsolation<Result: Sendable, Failure: Error>(
        _ body: @Sendable (isolated Connection) async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await withTaskExecutorPreference(eventLoop) { () async throws(Failure) -> Result in
            try await self.run(body)
        }
    }

    private func run<Result: Sendable, Failure: Error>(
        _ body: @Sendable (isolated Connection) async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await body(self)
    }

    // MARK: Connecting

    /// Connects to `address`.
    ///
    /// - Parameters:
    ///   - address: The peer to connect to.
    ///   - timeout: How long to wait for the connection to be established; nil waits as long
    ///     as the kernel does.
    ///   - options: Socket options for the new connection (`TCP_NODELAY` is on by default).
    ///   - eventLoop: The loop the connection will live on; by default the next loop of the
    ///     shared group.
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionRefused``,
    ///   ``TorusError/Kind/timedOut``, ``TorusError/Kind/unreachable``, …) or
    ///   `CancellationError`.
    public static func connect(
        to address: SocketAddress,
        timeout: Duration? = nil,
        options: ConnectionOptions = .init(),
        on eventLoop: EventLoop? = nil
    ) async throws -> Connection {
        let loop = try eventLoop ?? EventLoopGroup.shared.next()
        let storage = try address.storage()
        let fd = try SocketSyscalls.makeSocket(family: address.family, kind: .stream, for: loop)
        do {
            try options.apply(to: fd, isTCP: address.family != AF_UNIX)
        } catch {
            Glibc.close(fd)
            throw error
        }
        return try await loop.run {
            let completion = await loop.connect(fd, to: storage, timeout: timeout)
            guard completion.result == 0 else {
                _ = await loop.close(fd)
                switch completion.result {
                case -ECANCELED where Task.isCancelled: throw CancellationError()
                case -ECANCELED where timeout != nil:
                    throw TorusError(.timedOut, operation: .connect, errno: ETIMEDOUT, address: address,
                                     detail: "no connection within \(timeout!)")
                case -ECANCELED: throw CancellationError()
                default: throw TorusError(errno: -completion.result, operation: .connect, address: address)
                }
            }
            let local = SocketSyscalls.localAddress(fd) ?? address
            return Connection(adopting: fd, on: loop, localAddress: local, remoteAddress: address, options: options)
        }
    }

    /// Resolves `host` (without blocking any event loop) and connects to the first address
    /// that accepts.
    ///
    /// - Throws: the last address's error if none accepts, ``TorusError/Kind/hostNotFound``
    ///   if the name does not resolve.
    public static func connect(
        host: String,
        port: UInt16,
        timeout: Duration? = nil,
        options: ConnectionOptions = .init(),
        on eventLoop: EventLoop? = nil
    ) async throws -> Connection {
        var lastError = TorusError(.hostNotFound, operation: .resolve, detail: "\(host): no addresses")
        for address in try await SocketAddress.resolve(host: host, port: port) {
            do {
                return try await connect(to: address, timeout: timeout, options: options, on: eventLoop)
            } catch let error as TorusError {
                lastError = error
            }
        }
        throw lastError
    }

    // MARK: Reading

    /// Receives the next bytes that arrive, without copying them.
    ///
    /// The bytes stay in the event loop's receive buffer until the returned value is dropped;
    /// drop it soon (a connection holding many unconsumed buffers stops receiving until it
    /// gives some back).
    ///
    /// - Returns: The bytes, or nil at end of stream (the peer shut down its write side or
    ///   closed the connection).
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionReset``,
    ///   ``TorusError/Kind/timedOut``, ``TorusError/Kind/concurrentRead``,
    ///   ``TorusError/Kind/connectionClosed``) or `CancellationError`.
    public func receive(timeout: Duration? = nil) async throws -> ReceivedBytes? {
        try await waitForData(timeout: timeout ?? readTimeout)
        return receiver.take()
    }

    /// Reads the next bytes that arrive, at most `maxBytes`, into a new array.
    ///
    /// - Returns: The bytes, or nil at end of stream. With `maxBytes` 0, an empty array at
    ///   once (as ``read(into:timeout:)`` returns 0 for an empty buffer).
    /// - Throws: as ``receive(timeout:)``, and ``TorusError/Kind/invalidArgument`` for a
    ///   negative `maxBytes`.
    public func read(maxBytes: Int = 64 * 1024, timeout: Duration? = nil) async throws -> [UInt8]? {
        if maxBytes <= 0 { return try emptyRead(maxBytes: maxBytes) }
        try await waitForData(timeout: timeout ?? readTimeout)
        return receiver.hasData ? receiver.copy(maxBytes: maxBytes) : nil
    }

    /// Reads the next bytes that arrive into `buffer`; bytes that do not fit stay for the next
    /// read.
    ///
    /// The pointer is not `Sendable`, so call this from code isolated to the connection: a
    /// `Server` handler, or the body of ``withIsolation(_:)``. From anywhere else (your own
    /// actor, a plain task), use ``ByteStream/read(appendingTo:maxBytes:timeout:)`` or
    /// ``read(maxBytes:timeout:)``, whose arrays cross isolation freely:
    ///
    /// ```swift
    /// let count = try await connection.withIsolation { connection in
    ///     let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    ///     defer { buffer.deallocate() }
    ///     return try await connection.read(into: buffer)
    /// }
    /// ```
    ///
    /// See <doc:OwningAndSharingBytes>.
    ///
    /// - Returns: The number of bytes read; 0 at end of stream (or if `buffer` is empty).
    /// - Throws: as ``receive(timeout:)``.
    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration? = nil) async throws -> Int {
        guard buffer.count > 0 else { return 0 }
        try await waitForData(timeout: timeout ?? readTimeout)
        return receiver.copy(into: buffer)
    }

    /// Returns once bytes are queued or the stream ended; throws for everything else.
    ///
    /// Errors are made by the non-inlined helpers below: an error value built here would take
    /// a slot in this async function's frame, which every suspended reader keeps allocated.
    private func waitForData(timeout: Duration?) async throws {
        if isClosed || isReading { throw readRefusal() }
        isReading = true
        defer { isReading = false }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while !receiver.hasData {
            if receiver.reachedEnd {
                try checkEndOfStream()
                return
            }
            if let failure = receiver.failure { throw readFailure(errno: failure) }
            var remaining: Duration?
            if let deadline, let timeout {
                remaining = deadline - .now
                if remaining! <= .zero { throw timedOut(.read, after: timeout) }
            }
            let reason = await receiver.wait(timeout: remaining)
            if reason != .changed { throw readWakeFailure(reason, timeout: timeout) }
        }
    }

    /// Throws if the end of stream is really an abort: a reset (or a keep-alive or user
    /// timeout) whose error went to a write in flight, leaving the read only the end. Looked up
    /// once, at the first end of stream.
    private func checkEndOfStream() throws {
        if endOfStream == .unchecked {
            let aborted = isTCP && !isOutputShutDown && !receiver.isDraining && SocketSyscalls.wasAborted(fd)
            endOfStream = aborted ? .aborted : .clean
        }
        if endOfStream == .aborted {
            throw TorusError(.connectionReset, operation: .read, errno: ECONNRESET, address: remoteAddress,
                             detail: "the connection was reset or aborted (its error went to a write in flight)")
        }
    }

    @inline(never)
    private func emptyRead(maxBytes: Int) throws -> [UInt8] {
        guard maxBytes == 0 else {
            throw TorusError(.invalidArgument, operation: .read, address: remoteAddress, detail: "maxBytes is \(maxBytes); it must be 0 or more")
        }
        if isClosed { throw closedError(.read) }
        return []
    }

    @inline(never)
    private func readRefusal() -> any Error {
        if isClosed { return closedError(.read) }
        return TorusError(.concurrentRead, operation: .read, address: remoteAddress,
                          detail: "another task is already reading from this connection")
    }

    @inline(never)
    private func readFailure(errno: Int32) -> any Error {
        TorusError(errno: errno, operation: .read, address: remoteAddress)
    }

    @inline(never)
    private func readWakeFailure(_ reason: Receiver.WaitResult, timeout: Duration?) -> any Error {
        switch reason {
        case .timedOut: timedOut(.read, after: timeout ?? .zero)
        case .closed: closedError(.read)
        case .loopShutDown: TorusError(.eventLoopShutDown, operation: .read, address: remoteAddress)
        case .cancelled, .changed: CancellationError()
        }
    }

    @inline(never)
    private func timedOut(_ operation: TorusError.Operation, after timeout: Duration) -> any Error {
        TorusError(.timedOut, operation: operation, errno: ETIMEDOUT, address: remoteAddress, detail: "nothing happened within \(timeout)")
    }

    // MARK: Writing

    /// Writes `bytes`; returns once the kernel has accepted every byte.
    ///
    /// Concurrent writes go out one after another, in the order they were made, never
    /// interleaved.
    ///
    /// - Parameters:
    ///   - bytes: The bytes to write.
    ///   - timeout: A deadline for the whole write, however many sends it takes; nil waits
    ///     as long as it takes.
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionReset`` when the peer has gone,
    ///   ``TorusError/Kind/timedOut``, ``TorusError/Kind/connectionClosed``) or
    ///   `CancellationError`. Writing to a closed peer never raises `SIGPIPE`.
    public func write(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        // `bytes` is a borrowed parameter: the caller keeps its storage alive and unchanged
        // until this call returns, which is after the kernel's last completion for it.
        let buffer = bytes.withUnsafeBytes { $0 }
        try await write(buffer, timeout: timeout)
    }

    /// Writes the UTF-8 bytes of `string`. Returns and throws as ``write(_:timeout:)-([UInt8],_)``.
    public func write(_ string: String, timeout: Duration? = nil) async throws {
        try await write(Array(string.utf8), timeout: timeout)
    }

    /// Writes any collection of bytes (an `ArraySlice`, a `Data`-like type, …). Returns and
    /// throws as ``write(_:timeout:)-([UInt8],_)``.
    public func write(_ bytes: some Collection<UInt8>, timeout: Duration? = nil) async throws {
        try await write(bytes as? [UInt8] ?? Array(bytes), timeout: timeout)
    }

    /// Writes received bytes with no copy, from the receive buffer they arrived in: also
    /// bytes another connection received, which makes a proxy zero-copy.
    ///
    /// ```swift
    /// while let bytes = try await upstream.receive() {
    ///     try await downstream.write(bytes)
    /// }
    /// ```
    ///
    /// Returns and throws as ``write(_:timeout:)-([UInt8],_)``. `bytes` is only borrowed: the
    /// caller still owns it afterwards.
    public func write(_ bytes: borrowing ReceivedBytes, timeout: Duration? = nil) async throws {
        try await bytes.withUnsafeBytes { buffer in try await write(buffer, timeout: timeout) }
    }

    /// Writes the bytes in `buffer` with no copy. `buffer` must stay valid until the call
    /// returns. Returns and throws as ``write(_:timeout:)-([UInt8],_)``.
    public func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) async throws {
        // Written out rather than passed as a closure to a helper: each async call layer on
        // this path costs an executor check and a task frame per write.
        let timeout = timeout ?? writeTimeout
        let deadline = timeout.map { ContinuousClock.now + $0 }
        try await beginWriting()
        defer { passWriteAccessOn() }
        var offset = 0
        do {
            while offset < buffer.count {
                // Closed meanwhile? The descriptor number may already belong to another socket.
                try checkWritable()
                let remaining = try remainingTime(until: deadline, timeout: timeout)
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[offset...])
                let completion = await eventLoop.send(fd, chunk, timeout: remaining)
                let sent = try sentCount(completion, timeout: timeout)
                offset += sent
                bytesWritten &+= UInt64(sent)
            }
        } catch {
            throw writeEnded(by: error, written: offset, of: buffer.count)
        }
    }

    /// Writes several buffers in order with one `sendmsg` (vectored I/O), continuing until
    /// every byte is accepted. Returns and throws as ``write(_:timeout:)-([UInt8],_)``.
    public func write(contentsOf buffers: [[UInt8]], timeout: Duration? = nil) async throws {
        // As in `write(_:)`, the borrowed `buffers` keeps every element's storage alive.
        var vectors: [iovec] = buffers.compactMap { bytes in
            bytes.isEmpty ? nil : bytes.withUnsafeBytes { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        }
        guard !vectors.isEmpty else { return }
        let timeout = timeout ?? writeTimeout
        let deadline = timeout.map { ContinuousClock.now + $0 }
        try await beginWriting()
        defer { passWriteAccessOn() }
        let total = vectors.reduce(0) { $0 + $1.iov_len }
        var written = 0
        var first = 0
        do {
            while first < vectors.count {
                try checkWritable()
                let remaining = try remainingTime(until: deadline, timeout: timeout)
                // The engine copies the vectors at submission; `vectors` is not changed until
                // the send completes.
                let pending = vectors.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[first...]) }
                let completion = await eventLoop.send(fd, vectors: pending, timeout: remaining)
                var sent = try sentCount(completion, timeout: timeout)
                bytesWritten &+= UInt64(sent)
                written += sent
                while first < vectors.count, sent >= vectors[first].iov_len {
                    sent -= vectors[first].iov_len
                    first += 1
                }
                if sent > 0 {
                    vectors[first].iov_base += sent
                    vectors[first].iov_len -= sent
                }
            }
        } catch {
            throw writeEnded(by: error, written: written, of: total)
        }
    }

    /// The error a write that stopped after `written` of its `total` bytes throws. Past the
    /// first byte the stream has a hole where the rest should be: the connection takes no
    /// more writes or sends, and the error says how far the write got.
    @inline(never)
    private func writeEnded(by error: any Error, written: Int, of total: Int) -> any Error {
        guard written > 0, written < total, brokenWrite == nil, !isClosed else { return error }
        let reason: String
        var kind = TorusError.Kind.connectionReset
        var errno: Int32? = nil
        switch error {
        case let error as TorusError:
            kind = error.kind
            errno = error.errno
            reason = error.detail ?? "\(error.kind)"
        case is CancellationError:
            kind = .incompleteWrite
            reason = "cancelled"
        default:
            reason = "\(error)"
        }
        let broken = TorusError(
            kind, operation: .write, errno: errno, address: remoteAddress,
            detail: "\(reason), after \(written) of \(total) bytes were written; the stream now has a gap, so this connection takes no more writes")
        brokenWrite = BrokenWrite(error: broken)
        return error is CancellationError ? error : broken
    }

    /// Makes the caller the only writer, queueing behind writers already in progress; the
    /// caller must call `passWriteAccessOn()` when done. Suspends only when another write is
    /// in progress.
    @inline(__always)
    private func beginWriting() async throws {
        try checkWritable()
        if !output.tryBeginWriting() { try await waitForWriteTurn() }
    }

    /// Waits until the output is handed to this task; it holds it when this returns.
    private func waitForWriteTurn() async throws {
        let handOver = await eventLoop.suspend { id in
            // The writer may have finished since we looked: then take the output now, before
            // anyone else can.
            if output.tryBeginWriting() {
                eventLoop.resume(id, with: Completion(result: 0))
            } else {
                output.waitForTurn(id)
            }
        }
        switch handOver.result {
        case 0: break
        case -ESHUTDOWN: throw TorusError(.eventLoopShutDown, operation: .write, address: remoteAddress)
        default: throw CancellationError()
        }
        do { try checkWritable() } catch {
            passWriteAccessOn()
            throw error
        }
    }

    private func passWriteAccessOn() {
        output.passOn()
    }

    // MARK: Queued sends

    /// Sends received bytes with no copy and without waiting for the kernel: the connection
    /// takes the buffer, queues it behind the writes made before, and returns. The buffer
    /// goes back to its loop once sent; buffers queued while a send is in flight go out
    /// together in one `sendmsg`.
    ///
    /// ```swift
    /// while let bytes = try await connection.receive() {
    ///     try await connection.send(bytes)   // echo: no copy, no wait for the kernel
    /// }
    /// try await connection.flush()
    /// ```
    ///
    /// The call waits only when other writers are queued before it, the connection already
    /// has 16 receive buffers queued, or its queue is past
    /// ``ConnectionOptions/sendQueueHighWaterMark``. Writes and sends go out in the order they were made. A send
    /// that fails in the kernel is reported by the next `send`, write or ``flush()``, and
    /// nothing more goes out after it; ``close()`` and ``shutdown(_:)`` let what is queued go
    /// out first.
    ///
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionReset`` and others from an
    ///   earlier send, ``TorusError/Kind/connectionClosed``) or `CancellationError`.
    public func send(_ bytes: consuming ReceivedBytes) async throws {
        try checkWritable()
        if let failure = output.failure { throw sendFailure(Completion(result: -failure), timeout: nil) }
        guard bytes.count > 0 else { return }
        if !output.canJoinOutbox(owned: bytes.isOwned) { try await waitForWriteTurn() }
        output.enqueue(bytes.handOver())
    }

    /// Bytes queued by ``send(_:)-(ReceivedBytes)`` that the kernel has not accepted yet.
    public var queuedBytes: Int { output.queuedBytes }

    /// Whether a send would be queued without waiting: the connection is open for writing,
    /// no earlier send failed, and the queue is under its high-water mark. A task that
    /// broadcasts to many connections can skip (or drop) one that is not writable instead of
    /// waiting for its slow reader.
    public var isWritable: Bool {
        !isClosed && !isOutputShutDown && brokenWrite == nil && output.failure == nil && output.queuedBytes < output.highWaterMark
    }

    /// Waits until every byte queued by ``send(_:)-(ReceivedBytes)`` is sent.
    ///
    /// - Throws: the ``TorusError`` a queued send failed with, or `CancellationError`.
    public func flush() async throws {
        if output.hasQueuedBytes {
            switch await waitForQueuedSends() {
            case 0: break
            case -ESHUTDOWN: throw TorusError(.eventLoopShutDown, operation: .write, address: remoteAddress)
            default: throw CancellationError()
            }
        }
        if let failure = output.failure { throw sendFailure(Completion(result: -failure), timeout: nil) }
    }

    /// Waits until the outbox is empty; the result is 0, or `-ECANCELED`/`-ESHUTDOWN`.
    private func waitForQueuedSends() async -> Int32 {
        await eventLoop.suspend { id in
            if output.hasQueuedBytes {
                output.waitForDrain(id)
            } else {
                eventLoop.resume(id, with: Completion(result: 0))
            }
        }.result
    }

    // The write path's checks throw untyped errors made out of line, so that the async
    // writers calling them keep no error value in their frames (see `waitForData`).

    @inline(__always)
    private func checkWritable() throws {
        if isClosed || isOutputShutDown || output.failure != nil || brokenWrite != nil { throw writeRefusal() }
    }

    @inline(never)
    private func writeRefusal() -> any Error {
        if isClosed { return closedError(.write) }
        if let brokenWrite { return brokenWrite.error }
        // After a failed queued send (a timeout leaves the socket open), anything sent would
        // follow the bytes it dropped: a hole in the stream. Also for a writer or a send that
        // waited for its turn behind it.
        if let failure = output.failure { return sendFailure(Completion(result: -failure), timeout: nil) }
        return TorusError(.connectionClosed, operation: .write, address: remoteAddress, detail: "the write side was shut down")
    }

    @inline(__always)
    private func remainingTime(until deadline: ContinuousClock.Instant?, timeout: Duration?) throws -> Duration? {
        guard let deadline else { return nil }
        let remaining = deadline - .now
        if remaining <= .zero { throw writeTimedOut(timeout) }
        return remaining
    }

    @inline(never)
    private func writeTimedOut(_ timeout: Duration?) -> any Error {
        TorusError(.timedOut, operation: .write, errno: ETIMEDOUT, address: remoteAddress,
                   detail: "not every byte was written within \(timeout ?? .zero)")
    }

    @inline(__always)
    private func sentCount(_ completion: Completion, timeout: Duration?) throws -> Int {
        if completion.result <= 0 { throw sendFailure(completion, timeout: timeout) }
        return Int(completion.result)
    }

    @inline(never)
    private func sendFailure(_ completion: Completion, timeout: Duration?) -> any Error {
        if completion.result == 0 {
            return TorusError(.connectionReset, operation: .write, address: remoteAddress, detail: "the socket accepted no bytes")
        }
        return failure(completion, .write, timeout: timeout)
    }

    // MARK: Closing

    /// Shuts down one direction of the connection. After `.write`, the peer reads end of
    /// stream once it has everything written before; this side can still read.
    public func shutdown(_ direction: ShutdownDirection) async throws {
        guard !isClosed else { throw closedError(.shutdown) }
        if direction != .read {
            isOutputShutDown = true
            // What `send` queued goes out before the end of stream.
            try await flush()
            // Closed while the queue drained: the descriptor's number may be another socket's.
            guard !isClosed else { throw closedError(.shutdown) }
        }
        // A direct call, not a ring request: io_uring runs SHUTDOWN on a worker thread that
        // looks the descriptor up only when it runs, after a `close()` that came meanwhile may
        // have freed the number for a new socket. shutdown(2) on a socket never blocks, and
        // here nothing can close the descriptor between the check above and the call.
        try SocketSyscalls.shutdown(fd, how: direction.how, address: remoteAddress)
    }

    /// Closes the connection. Reads and writes in progress end with
    /// ``TorusError/Kind/connectionClosed``; bytes queued by ``send(_:)-(ReceivedBytes)`` go out first (cancel
    /// the closing task to close without waiting for them). Closing twice does nothing.
    public func close() async {
        guard !isClosed else { return }
        isClosed = true
        receiver.close()
        if output.hasQueuedBytes { _ = await waitForQueuedSends() }
        output.abandon()
        if output.isWriting { eventLoop.cancelOperations(on: fd) }
        _ = await eventLoop.close(fd)
    }

    /// Whether the connection is open: false once ``close()`` has been called.
    public var isOpen: Bool { !isClosed }

    /// Bytes received from the peer so far (handed to readers or waiting to be read).
    public var bytesReceived: UInt64 { receiver.bytesReceived }

    /// Bytes the kernel has accepted for sending so far, by writes and queued sends.
    public var bytesSent: UInt64 { bytesWritten &+ output.bytesSent }

    /// What the kernel has moved on this connection (see ``SocketSyscalls/kernelProgress(_:)``);
    /// nil once closed, or when it is not TCP.
    func kernelProgress() -> SocketSyscalls.KernelProgress? {
        // Closed: the descriptor's number may already be another socket's.
        guard !isClosed else { return nil }
        return SocketSyscalls.kernelProgress(fd)
    }

    /// Closes the connection at once because nothing moved for `idleTime`: queued sends are
    /// dropped, and the calls it ends (and later ones) fail with ``TorusError/Kind/timedOut``.
    func closeForBeingIdle(after idleTime: Duration) async {
        guard !isClosed else { return }
        closedIdleAfter = idleTime
        isClosed = true
        receiver.close()
        output.abandon()
        if output.isWriting { eventLoop.cancelOperations(on: fd) }
        _ = await eventLoop.close(fd)
    }

    // MARK: Options

    /// Sets the timeout of every read and receive that passes none of its own; nil waits as
    /// long as it takes. See ``ConnectionOptions/readTimeout``.
    public func setReadTimeout(_ timeout: Duration?) {
        readTimeout = timeout
    }

    /// Sets the timeout of every write that passes none of its own, and of each `sendmsg` of
    /// bytes queued by ``send(_:)-(ReceivedBytes)``; nil waits as long as it takes. See
    /// ``ConnectionOptions/writeTimeout``.
    public func setWriteTimeout(_ timeout: Duration?) {
        writeTimeout = timeout
        output.sendTimeout = timeout
    }

    /// Turns Nagle's algorithm off (`true`, the default) or on (`TCP_NODELAY`). Does nothing
    /// on a Unix-domain connection.
    ///
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionClosed`` after ``close()``, or the
    ///   kernel's error).
    public func setNoDelay(_ enabled: Bool) throws {
        try checkOpen(.setOption)
        guard isTCP else { return }
        try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, CInt(enabled ? 1 : 0))
    }

    /// Enables TCP keep-alive probing with the given timing, or disables it with nil. Does
    /// nothing on a Unix-domain connection.
    ///
    /// - Throws: ``TorusError`` (``TorusError/Kind/invalidArgument`` for an idle time or
    ///   interval under a second or a count under 1, ``TorusError/Kind/connectionClosed`` after
    ///   ``close()``, or the kernel's error).
    public func setKeepAlive(_ keepAlive: ConnectionOptions.KeepAlive?) throws {
        try checkOpen(.setOption)
        guard isTCP else { return }
        try ConnectionOptions.setKeepAlive(fd, keepAlive)
    }

    /// Sets how long sent bytes may stay unacknowledged before the kernel gives up on the
    /// connection (`TCP_USER_TIMEOUT`, see ``ConnectionOptions/userTimeout``); nil restores
    /// the kernel's default. Does nothing on a Unix-domain connection.
    public func setUserTimeout(_ timeout: Duration?) throws {
        try checkOpen(.setOption)
        guard isTCP else { return }
        try ConnectionOptions.setUserTimeout(fd, timeout)
    }

    /// Sets the kernel's send buffer size (`SO_SNDBUF`).
    public func setSendBufferSize(_ bytes: Int) throws {
        try checkOpen(.setOption)
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, CInt(clamping: bytes))
    }

    /// Sets the kernel's receive buffer size (`SO_RCVBUF`).
    public func setReceiveBufferSize(_ bytes: Int) throws {
        try checkOpen(.setOption)
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, CInt(clamping: bytes))
    }

    /// The kernel's send buffer size in bytes.
    public func sendBufferSize() throws -> Int {
        try checkOpen(.setOption)
        return Int(try SocketSyscalls.getOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, as: CInt.self, default: 0))
    }

    /// The kernel's receive buffer size in bytes.
    public func receiveBufferSize() throws -> Int {
        try checkOpen(.setOption)
        return Int(try SocketSyscalls.getOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, as: CInt.self, default: 0))
    }

    private func checkOpen(_ operation: TorusError.Operation) throws(TorusError) {
        guard !isClosed else { throw TorusError(.connectionClosed, operation: operation, address: remoteAddress) }
    }

    /// The error for a call ended, or refused, because the connection is closed: a timeout
    /// if it was closed for being idle.
    @inline(never)
    private func closedError(_ operation: TorusError.Operation) -> TorusError {
        if let idle = closedIdleAfter {
            return TorusError(.timedOut, operation: operation, errno: ETIMEDOUT, address: remoteAddress,
                              detail: "closed after \(idle) with nothing received or sent (idle timeout)")
        }
        return TorusError(.connectionClosed, operation: operation, address: remoteAddress)
    }

    /// The error for a failed completion, telling cancellation, timeout and close apart.
    private func failure(_ completion: Completion, _ operation: TorusError.Operation, timeout: Duration?) -> any Error {
        let errno = -completion.result
        if errno == ECANCELED, Task.isCancelled { return CancellationError() }
        // Closed by another task while this operation was in flight: whatever the kernel said
        // (ECANCELED, EBADF), the cause is the close.
        if isClosed { return closedError(operation) }
        guard errno == ECANCELED else { return TorusError(errno: errno, operation: operation, address: remoteAddress) }
        if let timeout {
            let detail = operation == .write ? "not every byte was written within \(timeout)" : "nothing happened within \(timeout)"
            return TorusError(.timedOut, operation: operation, errno: ETIMEDOUT, address: remoteAddress, detail: detail)
        }
        return CancellationError()
    }
}

/// The error that broke a connection's stream of writes (see `Connection.brokenWrite`).
private final class BrokenWrite: Sendable {
    let error: TorusError
    init(error: TorusError) { self.error = error }
}

extension Connection: CustomStringConvertible {
    /// `Connection(LOCAL <-> REMOTE)`, with both addresses.
    public nonisolated var description: String { "Connection(\(localAddress) <-> \(remoteAddress))" }
}
