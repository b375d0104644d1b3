import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket over IPv4 or IPv6, and the sequence of datagrams it receives.
///
/// Like ``Connection``, a datagram socket is an actor that runs on one ``EventLoop``: its
/// code executes on the loop's thread, where every send and receive is an operation of the
/// loop's engine (io_uring or epoll). Datagrams arrive through one multishot receive into the
/// loop's receive buffers.
///
/// ```swift
/// let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 7001))
/// for try await datagram in socket {                      // ends when the socket is closed
///     try await socket.send(datagram.bytes, to: datagram.sender)
/// }
/// ```
///
/// A *connected* socket (``connect(to:timeout:)``, or ``connect(to:timeout:options:on:)``)
/// talks to one peer: it sends with ``send(_:timeout:)-(UnsafeRawBufferPointer,_)``, receives
/// only that peer's datagrams, and reports an ICMP "port unreachable" as
/// ``TorusError/Kind/connectionRefused`` on the next call.
///
/// Sends may run concurrently (each is one datagram); one task receives at a time. A
/// datagram larger than ``maximumReceiveSize`` arrives truncated, flagged with `isTruncated`.
/// Close the socket when done; one that is dropped is closed when the last reference goes.
public actor DatagramSocket {
    /// The loop this socket lives on.
    public nonisolated let eventLoop: EventLoop
    /// The address the socket is bound to; for port 0, the port the kernel chose. Once
    /// connected, the address the kernel picked for reaching the peer (a socket bound to
    /// `0.0.0.0` then reports the interface's address, as `getsockname` does).
    public nonisolated var localAddress: SocketAddress { boundAddress.withLock { $0 } }
    /// Behind ``localAddress``: set at bind, refreshed by ``connect(to:timeout:)``. A lock
    /// rather than actor state so that the address stays readable without `await`.
    private nonisolated let boundAddress: Mutex<SocketAddress>
    /// The payload size beyond which received datagrams are truncated: the loop's receive
    /// buffer size (``EventLoop/Configuration/receiveBufferSize``) less 44 bytes of header.
    public nonisolated var maximumReceiveSize: Int { eventLoop.maximumDatagramReceiveSize }
    /// The peer set by ``connect(to:timeout:)``; nil while not connected.
    public private(set) var remoteAddress: SocketAddress?

    nonisolated let fd: CInt
    private var isClosed = false
    private var isReceiving = false
    private var sendsInFlight = 0
    private let receiver: Receiver

    /// The socket's event loop, which runs all of its code.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        eventLoop.asUnownedSerialExecutor()
    }

    /// Creates a UDP socket bound to `address`.
    ///
    /// - Parameters:
    ///   - address: An IPv4 or IPv6 address and port. Port 0 picks a free port; read it from
    ///     ``localAddress``. Bind to `.ipv4(.any, port: 0)` for a client that only sends.
    ///   - options: Socket options set before binding.
    ///   - eventLoop: The loop to run on; by default the next loop of the shared group.
    /// - Throws: ``TorusError`` (``TorusError/Kind/addressInUse``,
    ///   ``TorusError/Kind/addressNotAvailable``, ``TorusError/Kind/invalidAddress`` for a
    ///   Unix-domain address, …).
    public init(
        bindingTo address: SocketAddress,
        options: Options = Options(),
        on eventLoop: EventLoop? = nil
    ) async throws {
        guard address.family != AF_UNIX else {
            throw TorusError(.invalidAddress, operation: .bind, address: address,
                             detail: "a datagram socket needs an IPv4 or IPv6 address")
        }
        let loop = try eventLoop ?? EventLoopGroup.shared.next()
        let fd = try SocketSyscalls.makeSocket(family: address.family, kind: .datagram, for: loop)
        do {
            try options.apply(to: fd, family: address.family)
            try SocketSyscalls.bind(fd, to: address)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.eventLoop = loop
        self.boundAddress = Mutex(SocketSyscalls.localAddress(fd) ?? address)
        self.receiver = Receiver(fd: fd, loop: loop, kind: .datagram)
    }

    /// Creates a UDP socket on a free local port and connects it to `address`.
    ///
    /// - Throws: as ``init(bindingTo:options:on:)`` and ``connect(to:timeout:)``.
    public static func connect(
        to address: SocketAddress,
        timeout: Duration? = nil,
        options: Options = Options(),
        on eventLoop: EventLoop? = nil
    ) async throws -> DatagramSocket {
        let local: SocketAddress = switch address {
        case .ipv6: .ipv6(.any, port: 0)
        default: .ipv4(.any, port: 0)
        }
        let socket = try await DatagramSocket(bindingTo: local, options: options, on: eventLoop)
        do {
            try await socket.connect(to: address, timeout: timeout)
        } catch {
            await socket.close()
            throw error
        }
        return socket
    }

    deinit {
        if !isClosed {
            // The receive in flight holds the socket open in the kernel: cancel it first.
            let receiver = self.receiver
            eventLoop.execute { receiver.close() }
            eventLoop.closeDetached(fd)
        }
    }

    /// Runs `body` on the socket's event loop, isolated to the socket: every send and receive
    /// inside is a direct call on the loop thread, with no thread hop.
    ///
    /// ```swift
    /// await socket.withIsolation { socket in
    ///     while let datagram = try? await socket.receive() {
    ///         try? await datagram.bytes.withUnsafeBytes { try await socket.send($0, to: datagram.sender) }
    ///     }
    /// }
    /// ```
    public nonisolated func withIsolation<Result: Sendable, Failure: Error>(
        _ body: @Sendable (isolated DatagramSocket) async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await withTaskExecutorPreference(eventLoop) { () async throws(Failure) -> Result in
            try await self.run(body)
        }
    }

    private func run<Result: Sendable, Failure: Error>(
        _ body: @Sendable (isolated DatagramSocket) async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await body(self)
    }

    // MARK: Connecting

    /// Connects the socket to `address`: from now on it sends there by default
    /// (``send(_:timeout:)-(UnsafeRawBufferPointer,_)``) and receives only from there. Calling
    /// it again connects to another peer.
    ///
    /// No packet is exchanged; an unreachable peer shows up on a later call, as
    /// ``TorusError/Kind/connectionRefused``.
    ///
    /// - Throws: ``TorusError`` (``TorusError/Kind/invalidAddress`` for an address of the
    ///   wrong family, ``TorusError/Kind/unreachable``, ``TorusError/Kind/connectionClosed``)
    ///   or `CancellationError`.
    public func connect(to address: SocketAddress, timeout: Duration? = nil) async throws {
        try checkOpen(.connect)
        let target = try destination(address, operation: .connect)
        let completion = await eventLoop.connect(fd, to: try target.storage(), timeout: timeout)
        guard completion.result == 0 else { throw failure(completion, .connect, address: address, timeout: timeout) }
        remoteAddress = address
        if let local = SocketSyscalls.localAddress(fd) { boundAddress.withLock { $0 = local } }
    }

    // MARK: Sending

    /// Sends `buffer` as one datagram to `address`, with no copy. Returns once the kernel took
    /// it (which says nothing about delivery).
    ///
    /// An IPv4 address given to an IPv6 socket is sent to as an IPv4-mapped address.
    ///
    /// - Throws: ``TorusError``: ``TorusError/Kind/messageTooLong`` when `buffer` is larger
    ///   than a datagram can be, ``TorusError/Kind/invalidAddress`` for an IPv6 address on an
    ///   IPv4 socket, ``TorusError/Kind/connectionRefused`` when an earlier datagram was
    ///   refused, ``TorusError/Kind/timedOut``, ``TorusError/Kind/connectionClosed``; or
    ///   `CancellationError`.
    public func send(_ buffer: UnsafeRawBufferPointer, to address: SocketAddress, timeout: Duration? = nil) async throws {
        try await send(buffer, address: address, timeout: timeout)
    }

    /// Sends `bytes` as one datagram to `address`. Throws as ``send(_:to:timeout:)-(UnsafeRawBufferPointer,_,_)``.
    public func send(_ bytes: [UInt8], to address: SocketAddress, timeout: Duration? = nil) async throws {
        // The borrowed array keeps its storage alive and unchanged until this call returns.
        try await send(bytes.withUnsafeBytes { $0 }, address: address, timeout: timeout)
    }

    /// Sends the UTF-8 bytes of `string` as one datagram to `address`.
    public func send(_ string: String, to address: SocketAddress, timeout: Duration? = nil) async throws {
        try await send(Array(string.utf8), to: address, timeout: timeout)
    }

    /// Sends any collection of bytes as one datagram to `address`.
    public func send(_ bytes: some Collection<UInt8>, to address: SocketAddress, timeout: Duration? = nil) async throws {
        try await send(bytes as? [UInt8] ?? Array(bytes), to: address, timeout: timeout)
    }

    /// Sends `buffer` as one datagram to the connected peer, with no copy.
    ///
    /// - Throws: as ``send(_:to:timeout:)-(UnsafeRawBufferPointer,_,_)``, and
    ///   ``TorusError/Kind/invalidArgument`` if the socket is not connected.
    public func send(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) async throws {
        try await send(buffer, address: nil, timeout: timeout)
    }

    /// Sends `bytes` as one datagram to the connected peer.
    public func send(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        try await send(bytes.withUnsafeBytes { $0 }, address: nil, timeout: timeout)
    }

    /// Sends the UTF-8 bytes of `string` as one datagram to the connected peer.
    public func send(_ string: String, timeout: Duration? = nil) async throws {
        try await send(Array(string.utf8), timeout: timeout)
    }

    /// Sends any collection of bytes as one datagram to the connected peer.
    public func send(_ bytes: some Collection<UInt8>, timeout: Duration? = nil) async throws {
        try await send(bytes as? [UInt8] ?? Array(bytes), timeout: timeout)
    }

    private func send(_ buffer: UnsafeRawBufferPointer, address: SocketAddress?, timeout: Duration?) async throws {
        try checkOpen(.send)
        if let error = receiver.takeError() {
            throw TorusError(errno: error, operation: .send, address: remoteAddress)
        }
        let target = try address.map { address throws(TorusError) in try destination(address, operation: .send).storage() }
        guard target != nil || remoteAddress != nil else {
            throw TorusError(.invalidArgument, operation: .send, errno: EDESTADDRREQ,
                             detail: "the socket is not connected: pass the address to send to")
        }
        sendsInFlight += 1
        let completion = if let target {
            await eventLoop.send(fd, buffer, to: target, timeout: timeout)
        } else {
            await eventLoop.send(fd, buffer, timeout: timeout)
        }
        sendsInFlight -= 1
        guard completion.result >= 0 else {
            throw failure(completion, .send, address: address ?? remoteAddress, timeout: timeout, size: buffer.count)
        }
    }

    /// `address` in this socket's family: IPv4 becomes IPv4-mapped on an IPv6 socket; IPv6 on
    /// an IPv4 socket and Unix-domain addresses are errors.
    private func destination(_ address: SocketAddress, operation: TorusError.Operation) throws(TorusError) -> SocketAddress {
        switch (address, localAddress) {
        case (.ipv4, .ipv4), (.ipv6, .ipv6):
            return address
        case (.ipv4(let host, let port), .ipv6):
            let mapped = IPv6Address(mapping: host)
            return .ipv6(mapped, port: port)
        case (.ipv6, _):
            throw TorusError(.invalidAddress, operation: operation, address: address,
                             detail: "an IPv4 socket cannot reach an IPv6 address; bind the socket to an IPv6 address")
        default:
            throw TorusError(.invalidAddress, operation: operation, address: address,
                             detail: "a datagram socket needs an IPv4 or IPv6 address")
        }
    }

    // MARK: Receiving

    /// Receives the next datagram, without copying it.
    ///
    /// The payload stays in the event loop's receive buffer until the returned value is
    /// dropped; drop it soon (a socket holding many unconsumed buffers stops receiving, and
    /// the kernel queues, then drops, what arrives meanwhile).
    ///
    /// - Throws: ``TorusError`` (``TorusError/Kind/connectionRefused`` on a connected socket
    ///   whose peer has no socket on that port, ``TorusError/Kind/timedOut``,
    ///   ``TorusError/Kind/concurrentRead`` if another task is receiving,
    ///   ``TorusError/Kind/connectionClosed`` once the socket is closed, also when the close
    ///   happens during the wait) or `CancellationError`.
    public func receive(timeout: Duration? = nil) async throws -> ReceivedDatagram {
        try await waitForDatagram(timeout: timeout)
        return receiver.takeDatagram()!
    }

    /// Receives the next datagram, copied into a ``Datagram`` (its buffer goes back at once).
    ///
    /// - Throws: as ``receive(timeout:)``.
    public func read(timeout: Duration? = nil) async throws -> Datagram {
        try await receive(timeout: timeout).datagram
    }

    /// The next datagram for the sequence: nil once the socket is closed.
    func nextDatagram() async throws -> Datagram? {
        do {
            return try await read()
        } catch let error as TorusError where error.kind == .connectionClosed && isClosed {
            return nil
        }
    }

    /// Returns once a datagram is queued; throws for everything else.
    private func waitForDatagram(timeout: Duration?) async throws {
        try checkOpen(.receive)
        guard !isReceiving else {
            throw TorusError(.concurrentRead, operation: .receive, address: remoteAddress ?? localAddress,
                             detail: "another task is already receiving on this socket")
        }
        isReceiving = true
        defer { isReceiving = false }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while !receiver.hasData {
            if let error = receiver.takeError() {
                throw TorusError(errno: error, operation: .receive, address: remoteAddress ?? localAddress)
            }
            var remaining: Duration?
            if let deadline {
                remaining = deadline - .now
                guard remaining! > .zero else { throw timedOut(after: timeout!) }
            }
            switch await receiver.wait(timeout: remaining) {
            case .changed:
                continue
            case .timedOut:
                throw timedOut(after: timeout!)
            case .closed:
                throw TorusError(.connectionClosed, operation: .receive, address: localAddress)
            case .loopShutDown:
                throw TorusError(.eventLoopShutDown, operation: .receive, address: localAddress)
            case .cancelled:
                throw CancellationError()
            }
        }
    }

    private func timedOut(after timeout: Duration) -> TorusError {
        TorusError(.timedOut, operation: .receive, errno: ETIMEDOUT, address: remoteAddress ?? localAddress,
                   detail: "no datagram within \(timeout)")
    }

    // MARK: Closing

    /// Closes the socket. Sends and receives in progress end with
    /// ``TorusError/Kind/connectionClosed``, and iterations over the socket end. Closing
    /// twice does nothing.
    public func close() async {
        guard !isClosed else { return }
        isClosed = true
        receiver.close()
        if sendsInFlight > 0 { eventLoop.cancelOperations(on: fd) }
        _ = await eventLoop.close(fd)
    }

    /// Whether ``close()`` has not been called yet.
    public var isOpen: Bool { !isClosed }

    func checkOpen(_ operation: TorusError.Operation) throws(TorusError) {
        guard !isClosed else { throw TorusError(.connectionClosed, operation: operation, address: localAddress) }
    }

    /// The error for a failed completion, telling cancellation, timeout and close apart.
    private func failure(
        _ completion: Completion, _ operation: TorusError.Operation, address: SocketAddress?,
        timeout: Duration?, size: Int? = nil
    ) -> any Error {
        let errno = -completion.result
        if errno == ECANCELED, Task.isCancelled { return CancellationError() }
        if isClosed { return TorusError(.connectionClosed, operation: operation, address: address) }
        switch errno {
        case ECANCELED:
            guard let timeout else { return CancellationError() }
            return TorusError(.timedOut, operation: operation, errno: ETIMEDOUT, address: address, detail: "nothing happened within \(timeout)")
        case EMSGSIZE:
            return TorusError(errno: errno, operation: operation, address: address,
                              detail: size.map { "a datagram of \($0) bytes is larger than the socket can send" })
        default:
            return TorusError(errno: errno, operation: operation, address: address)
        }
    }
}

extension DatagramSocket: CustomStringConvertible {
    /// `DatagramSocket(ADDRESS)`, with the bound address.
    public nonisolated var description: String { "DatagramSocket(\(localAddress))" }
}
