public import Torus
internal import CTorusTLS
#if canImport(Glibc)
import Glibc
#endif

/// A TLS connection: a `ByteStream` whose bytes are encrypted on their way through a
/// `Connection`.
///
/// A stream runs on its connection's event loop and is isolated like it (its executor is the
/// connection's), so a handler isolated to the stream calls OpenSSL and the connection
/// without changing threads. Every encrypted byte moves through Torus's engine; OpenSSL never
/// touches the socket.
///
/// Make one with ``connect(host:port:context:serverName:timeout:options:on:)`` (a client),
/// let a `Server` make them (``Torus/Server/run(tls:handshakeTimeout:_:)``), or wrap
/// a connection of your own with ``init(clientOn:context:serverName:)`` or
/// ``init(serverOn:context:)`` and call ``handshake(timeout:)``.
///
/// Reading and writing are those of `ByteStream`, so `BufferedReader` and
/// framing work unchanged. End of stream is the peer's close_notify: ``receive(timeout:)``
/// returns nil. A peer that closes the connection without one ends the stream with
/// ``TLSError/Kind/truncated``: what came before may have been cut short.
public actor TLSStream: ByteStream {
    /// The connection the encrypted bytes move through.
    public nonisolated let connection: Connection
    /// The context the stream was made from.
    public nonisolated let context: TLSContext

    /// The connection's event loop, which runs all of the stream's code.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { connection.unownedExecutor }
    /// The connection's local address.
    public nonisolated var localAddress: SocketAddress { connection.localAddress }
    /// The connection's remote address.
    public nonisolated var remoteAddress: SocketAddress { connection.remoteAddress }

    /// The OpenSSL state and the handling of its bytes; the stream does the I/O around it.
    /// (`TLSMemorySession` mirrors the loops below over memory, for the fuzz targets: a change
    /// to how they call the session belongs there too.)
    let session: TLSSession
    private(set) var phase = Phase.new
    private var handshakeWaiters: [CheckedContinuation<Void, any Error>] = []
    /// Set once the peer's close_notify has arrived (or the drain of a server ended reading).
    private var readEnded = false
    private var isReading = false
    /// The error of a write that failed: the record stream is broken from then on, so every
    /// later write fails with it.
    private var writeFailure: (any Error)?
    private var sentCloseNotify = false

    enum Phase {
        case new, handshaking, established, failed(any Error)
    }

    /// A client stream over `connection`, not yet shaken hands.
    ///
    /// - Parameters:
    ///   - connection: The connection to the server; the stream owns it from now on.
    ///   - context: A client context.
    ///   - serverName: The name the server's certificate must be for, also sent to it (SNI)
    ///     unless it is an IP address. Nil: the connection's remote address must be in the
    ///     certificate (with ``TLSConfiguration/Verification/full``).
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` when `context` is a server's.
    public init(clientOn connection: Connection, context: TLSContext, serverName: String? = nil) throws {
        self.session = try TLSSession.client(context: context, peer: connection.remoteAddress, serverName: serverName)
        self.connection = connection
        self.context = context
    }

    /// A server stream over `connection`, not yet shaken hands.
    ///
    /// - Parameters:
    ///   - connection: A connection from a client; the stream owns it from now on.
    ///   - context: A server context.
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` when `context` is a client's.
    public init(serverOn connection: Connection, context: TLSContext) throws {
        self.session = try TLSSession.server(context: context, peer: connection.remoteAddress)
        self.connection = connection
        self.context = context
    }

    // MARK: What was agreed

    /// Whether the handshake has completed.
    public var isEstablished: Bool {
        if case .established = phase { return true }
        return false
    }

    /// The protocol version agreed, once the handshake completed.
    public var protocolVersion: TLSConfiguration.Version? {
        guard isEstablished else { return nil }
        return SSL_version(session.ssl) == TLS1_3_VERSION ? .tls13 : .tls12
    }

    /// The application protocol agreed by ALPN, if any.
    public var applicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(session.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The server name: what a client sent (SNI), as a server read it; nil if none.
    public var serverName: String? {
        guard let name = SSL_get_servername(session.ssl, TLSEXT_NAMETYPE_host_name) else { return nil }
        return String(cString: name)
    }

    /// The cipher suite agreed, by its standard name (as in `TLS_AES_128_GCM_SHA256`).
    public var cipherSuite: String? {
        guard let cipher = SSL_get_current_cipher(session.ssl), let name = SSL_CIPHER_standard_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// Whether the handshake resumed an earlier session (a ticket) instead of a full one.
    public var isResumed: Bool { SSL_session_reused(session.ssl) == 1 }

    /// The subject of the peer's certificate (as in `CN=localhost`), if it sent one.
    public var peerCertificateSubject: String? {
        let (subject, _) = session.peerNames()
        return subject.isEmpty ? nil : subject
    }

    // MARK: Handshake

    /// Runs the handshake, if it has not run: returns once it has completed.
    ///
    /// Reads and writes start it themselves; call this to learn early whether the peer is the
    /// one expected, or to bound the handshake by its own timeout.
    ///
    /// - Throws: ``TLSError`` (``TLSError/Kind/untrustedCertificate``,
    ///   ``TLSError/Kind/hostnameMismatch``, ``TLSError/Kind/handshakeTimedOut``, …),
    ///   `TorusError` from the connection, or `CancellationError`. A failed handshake
    ///   fails every later call with the same error.
    public func handshake(timeout: Duration? = nil) async throws {
        switch phase {
        case .established:
            return
        case .failed(let error):
            throw error
        case .handshaking:
            try await withCheckedThrowingContinuation { handshakeWaiters.append($0) }
            return
        case .new:
            phase = .handshaking
        }
        do {
            try await runHandshake(deadline: timeout.map { ContinuousClock.now + $0 }, timeout: timeout)
            phase = .established
            for waiter in handshakeWaiters { waiter.resume() }
        } catch {
            phase = .failed(error)
            for waiter in handshakeWaiters { waiter.resume(throwing: error) }
            handshakeWaiters = []
            throw error
        }
        handshakeWaiters = []
    }

    private func runHandshake(deadline: ContinuousClock.Instant?, timeout: Duration?) async throws {
        func remaining() throws -> Duration? {
            guard let deadline else { return nil }
            let left = deadline - .now
            guard left > .zero else { throw handshakeTimeout(timeout) }
            return left
        }
        while true {
            let progress = session.handshakeStep()
            var failure: TLSError?
            if case .failed(let error) = progress { failure = error }
            // The next flight, or the alert that says why the handshake failed.
            if let output = session.takeOutput() {
                do {
                    // See `write(_:timeout:)` for why the buffer may go to the connection.
                    nonisolated(unsafe) let buffer = output.buffer
                    try await connection.write(buffer, timeout: failure == nil ? try remaining() : .seconds(1))
                } catch let error as TorusError where error.kind == .timedOut && failure == nil {
                    throw handshakeTimeout(timeout)
                } catch where failure != nil {
                    // The alert could not go out; the handshake's own error says more.
                }
            }
            if let failure { throw failure }
            if case .complete = progress { return }
            do {
                if let bytes = try await connection.receive(timeout: try remaining()) {
                    bytes.withUnsafeBytes { session.appendLeftover($0) }
                } else {
                    session.endInput()
                }
            } catch let error as TorusError where error.kind == .timedOut {
                throw handshakeTimeout(timeout)
            }
        }
    }

    private func handshakeTimeout(_ timeout: Duration?) -> TLSError {
        TLSError(.handshakeTimedOut, step: .handshake, detail: "no handshake within \(timeout ?? .zero)")
    }

    // MARK: Reading

    /// The next bytes that arrive, decrypted, or nil at end of stream (the peer's
    /// close_notify, or the end of a `Server`'s drain).
    ///
    /// - Throws: ``TLSError`` (``TLSError/Kind/truncated`` when the connection ends without
    ///   a close_notify, ``TLSError/Kind/alertReceived``, …), `TorusError`
    ///   (`.timedOut`, `.connectionReset`,
    ///   `.concurrentRead`) or `CancellationError`.
    public func receive(timeout: Duration? = nil) async throws -> ReceivedBytes? {
        let buffer = session.scratch()
        let count = try await readSome(into: buffer, timeout: timeout)
        guard count > 0 else { return nil }
        return ReceivedBytes(copying: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
    }

    /// Decrypts the next bytes that arrive into `buffer`, keeping any that do not fit for the
    /// next read. Call it from code isolated to the stream (the pointer is not `Sendable`).
    ///
    /// - Returns: The number of bytes; 0 at end of stream or for an empty `buffer`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration? = nil) async throws -> Int {
        guard buffer.count > 0 else { return 0 }
        return try await readSome(into: buffer, timeout: timeout)
    }

    private func readSome(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?) async throws -> Int {
        try await handshake(timeout: timeout)
        guard !isReading else {
            throw TorusError(.concurrentRead, operation: .read, detail: "another task is reading this TLS stream")
        }
        isReading = true
        defer { isReading = false }
        if let failure = session.readFailure {
            throw failure
        }
        if readEnded { return 0 }
        var outcome = session.decryptLeftover(into: buffer)
        while true {
            await sendOutputQueued()
            switch outcome {
            case .bytes(let count):
                return count
            case .end:
                readEnded = true
                return 0
            case .failed(let error):
                throw error
            case .needInput:
                break
            }
            guard let bytes = try await connection.receive(timeout: timeout) else {
                if await connection.isDraining {
                    // A server's graceful shutdown: end of stream for the handler, as on a
                    // plain connection (the bytes that arrived were all handed out).
                    readEnded = true
                    return 0
                }
                session.endInput()
                outcome = session.decryptLeftover(into: buffer)
                continue
            }
            outcome = bytes.withUnsafeBytes { session.decrypt(into: buffer, received: $0) }
        }
    }

    // MARK: Writing

    /// Encrypts and writes `buffer`, returning once every encrypted byte is accepted by the
    /// connection. Call it from code isolated to the stream (the pointer is not `Sendable`).
    ///
    /// - Throws: `TorusError` from the connection (a write that fails or times out
    ///   breaks the stream: every later write fails with the same error), ``TLSError``, or
    ///   `CancellationError`.
    public func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) async throws {
        try await handshake(timeout: timeout)
        try checkWritable()
        guard buffer.count > 0 else { return }
        try encrypt(buffer)
        let output = try encryptedOutput()
        // The stream and its connection share one serial executor (the loop), so the call runs
        // at once on this thread, and `output` (which owns the buffer) lives until it returns:
        // nothing else can touch the buffer meanwhile.
        nonisolated(unsafe) let records = output.buffer
        do {
            try await connection.write(records, timeout: timeout)
        } catch {
            writeFailure = error
            throw error
        }
        session.recycle(output)
    }

    /// Encrypts `bytes` and queues them for sending: returns once they are queued, as
    /// `Connection.send(_:)` does.
    public func send(_ bytes: consuming ReceivedBytes) async throws {
        try await handshake(timeout: nil)
        try checkWritable()
        guard bytes.count > 0 else { return }
        try bytes.withUnsafeBytes { try encrypt($0) }
        guard let records = session.copyOutput() else { throw noRecord() }
        do {
            try await connection.send(records)
        } catch {
            writeFailure = error
            throw error
        }
    }

    /// Waits until everything queued by ``send(_:)`` is sent.
    public func flush() async throws {
        try await connection.flush()
    }

    private func checkWritable() throws {
        if let writeFailure { throw writeFailure }
        if sentCloseNotify {
            throw TLSError(.streamClosed, step: .write, detail: "the stream's write side is shut down (close_notify sent)")
        }
    }

    /// Encrypts `plaintext` into records, which wait in the transport for
    /// ``encryptedOutput()``; a failure breaks the write side.
    private func encrypt(_ plaintext: UnsafeRawBufferPointer) throws {
        do {
            try session.encrypt(plaintext)
        } catch {
            writeFailure = error
            throw error
        }
    }

    /// The records ``encrypt(_:)`` made, handed over.
    private func encryptedOutput() throws -> TLSSession.Output {
        guard let output = session.takeOutput() else { throw noRecord() }
        return output
    }

    private func noRecord() -> TLSError {
        let failure = TLSError(.protocolViolation, step: .write, detail: "OpenSSL wrote no record")
        writeFailure = failure
        return failure
    }

    /// Queues whatever OpenSSL wrote while reading (a key update's answer, an alert, a session
    /// ticket's acknowledgement), in order with the writes, without waiting for it to go out.
    /// A failure breaks the write side and shows on the next write.
    private func sendOutputQueued() async {
        guard let records = session.copyOutput() else { return }
        do {
            try await connection.send(records)
        } catch {
            if writeFailure == nil { writeFailure = error }
        }
    }

    // MARK: Closing

    /// Shuts down one direction. `.write` sends close_notify (the peer reads end of stream once
    /// it has everything written before) and shuts down the connection's write side; `.read`
    /// shuts down the connection's read side.
    public func shutdown(_ direction: ShutdownDirection) async throws {
        if direction != .read, isEstablished, writeFailure == nil, !sentCloseNotify {
            sentCloseNotify = true
            session.writeCloseNotify()
            if let output = session.takeOutput() {
                // See `write(_:timeout:)` for why the buffer may go to the connection.
                nonisolated(unsafe) let records = output.buffer
                try await connection.write(records)
            }
        }
        try await connection.shutdown(direction)
    }

    /// Sends close_notify (after what is queued) and closes the connection. Closing twice does
    /// nothing.
    public func close() async {
        if isEstablished, writeFailure == nil, !sentCloseNotify {
            sentCloseNotify = true
            session.writeCloseNotify()
            if let records = session.copyOutput() {
                try? await connection.send(records)
            }
        }
        await connection.close()
    }

    // MARK: Sessions

    /// Called by OpenSSL (through the context's new-session callback) on the loop thread, in
    /// the middle of a handshake or read of the stream: keeps `session` for resumption.
    static func sessionArrived(_ ssl: OpaquePointer, _ session: OpaquePointer) -> Bool {
        guard let pointer = SSL_get_ex_data(ssl, torus_tls_ex_data_index()) else { return false }
        let slot = Unmanaged<SessionSlot>.fromOpaque(pointer).takeUnretainedValue()
        slot.context.keep(session, for: slot.key)
        return true
    }
}

extension SocketAddress {
    /// The address without its port, as text (as in `127.0.0.1` or `::1`); a Unix-domain
    /// socket's path.
    var hostText: String {
        switch self {
        case .ipv4(let address, _): "\(address)"
        case .ipv6(let address, _, _): "\(address)"
        case .unix(let path): path
        }
    }
}

extension String {
    /// Whether this is an IPv4 or IPv6 address in text.
    var isIPAddress: Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, self, &buffer) == 1 || inet_pton(AF_INET6, self, &buffer) == 1
    }
}
