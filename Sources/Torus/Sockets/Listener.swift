public import CoreMetrics
public import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP (or Unix-domain stream) socket, and the sequence of connections it
/// accepts.
///
/// ```swift
/// let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 7000))
/// try await withThrowingDiscardingTaskGroup { group in
///     for try await connection in listener {
///         group.addTask(executorPreference: connection.eventLoop) {
///             while let bytes = try await connection.read() {
///                 try await connection.write(bytes)
///             }
///             await connection.close()
///         }
///     }
/// }
/// ```
///
/// The kernel accepts connections continuously (one multishot accept) into a bounded queue;
/// when the queue is full, accepting pauses and new connections wait in the kernel's backlog.
/// Running out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`) pauses
/// accepting briefly and logs (a warning at the first pause, a summary at most every 10 s while
/// it lasts, a line when accepting works again); it never ends the sequence. ``close()`` ends
/// every iteration.
public actor Listener: AsyncSequence {
    /// Each accepted connection.
    public typealias Element = Connection
    /// Iteration throws what ``accept()`` throws.
    public typealias Failure = any Error

    /// Listening options.
    public struct Options: Sendable {
        /// `SO_REUSEADDR`: bind even while old connections on the port linger in TIME_WAIT.
        /// On by default.
        public var reuseAddress = true
        /// `SO_REUSEPORT`: let several sockets (one per loop, say) listen on the same port,
        /// the kernel spreading connections among them.
        public var reusePort = false
        /// `IPV6_V6ONLY` for IPv6 listeners; nil keeps the system default (dual stack).
        public var ipv6Only: Bool? = nil
        /// Accepted connections held before accepting pauses.
        public var acceptQueueCapacity = 256
        /// How long accepting pauses after the process runs out of descriptors or memory (or
        /// after 64 errors about single connections in a row), before it tries again.
        public var resourceExhaustionPause: Duration = .milliseconds(100)
        /// Options for every accepted connection.
        public var connectionOptions = ConnectionOptions()
        /// Where the listener's metrics go (`torus.listener.accept.pauses`); nil for the
        /// factory bootstrapped with `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)? = nil

        /// Creates options with the default values; change them through the properties.
        public init() {}
    }

    /// The loop the listening socket lives on.
    public nonisolated let eventLoop: EventLoop
    /// The loops accepted connections are placed on, in turn. Each connection lives on its
    /// loop for life.
    public nonisolated let connectionLoops: [EventLoop]
    /// The address the socket is bound to; for port 0, the port the kernel chose.
    public nonisolated let localAddress: SocketAddress
    private let options: Options
    private let core: ListenerCore
    private var isClosed = false
    /// The position in `connectionLoops` of the next connection's loop.
    private var nextLoop = 0

    /// The listener's event loop, which runs all of its code.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        eventLoop.asUnownedSerialExecutor()
    }

    /// Binds a socket to `address` and listens, on one loop.
    ///
    /// - Parameters:
    ///   - address: Where to listen. Port 0 picks a free port; read it from ``localAddress``.
    ///   - backlog: Connections the kernel holds that have not been accepted yet.
    ///   - options: Socket and queueing options.
    ///   - eventLoop: The loop the listener and every connection it accepts live on. By
    ///     default, the listener lives on the next loop of the shared group and spreads its
    ///     connections over all the group's loops, as ``init(bindingTo:backlog:options:group:logger:)`` does.
    ///   - logger: Where accept pauses and errors are logged.
    /// - Throws: ``TorusError`` (``TorusError/Kind/addressInUse``,
    ///   ``TorusError/Kind/addressNotAvailable``, ``TorusError/Kind/ioUringUnavailable``, …).
    public init(
        bindingTo address: SocketAddress,
        backlog: Int32 = 511,
        options: Options = Options(),
        on eventLoop: EventLoop? = nil,
        logger: Logger = Logger(label: "torus.listener")
    ) async throws {
        if let eventLoop {
            try self.init(address: address, backlog: backlog, options: options, loop: eventLoop, connectionLoops: [eventLoop], logger: logger)
        } else {
            let group = try EventLoopGroup.shared
            try self.init(address: address, backlog: backlog, options: options, loop: group.next(), connectionLoops: group.loops, logger: logger)
        }
    }

    /// Binds a socket to `address` and listens, placing accepted connections on the loops of
    /// `group` in turn: one socket and one accept for the whole group, and every loop serving
    /// connections.
    ///
    /// - Parameters:
    ///   - address: Where to listen. Port 0 picks a free port; read it from ``localAddress``.
    ///   - backlog: Connections the kernel holds that have not been accepted yet.
    ///   - options: Socket and queueing options.
    ///   - group: The loops to spread connections over; the listener lives on the next one.
    ///   - logger: Where accept pauses and errors are logged.
    /// - Throws: as ``init(bindingTo:backlog:options:on:logger:)``.
    public init(
        bindingTo address: SocketAddress,
        backlog: Int32 = 511,
        options: Options = Options(),
        group: EventLoopGroup,
        logger: Logger = Logger(label: "torus.listener")
    ) async throws {
        try self.init(address: address, backlog: backlog, options: options, loop: group.next(), connectionLoops: group.loops, logger: logger)
    }

    /// Binds one listener per loop of `group` to the same address (`SO_REUSEPORT`): each
    /// accepts on its own loop, where its connections then live, and the kernel spreads new
    /// connections over the sockets. Serve them together with ``Server/init(listeners:configuration:logger:)``.
    ///
    /// - Parameters:
    ///   - address: Where to listen, an IPv4 or IPv6 address. Port 0 picks a free port for
    ///     the first listener, and the others bind the same one.
    ///   - backlog: Connections each socket's kernel queue holds.
    ///   - options: Socket and queueing options; `reusePort` is turned on.
    ///   - group: The loops, one listener each.
    ///   - logger: Where accept pauses and errors are logged.
    /// - Returns: The listeners, in the order of the group's loops.
    /// - Throws: as ``init(bindingTo:backlog:options:on:logger:)``;
    ///   ``TorusError/Kind/invalidArgument`` for a Unix-domain address, which one socket only
    ///   can bind.
    public static func perLoop(
        bindingTo address: SocketAddress,
        backlog: Int32 = 511,
        options: Options = Options(),
        group: EventLoopGroup,
        logger: Logger = Logger(label: "torus.listener")
    ) async throws -> [Listener] {
        if case .unix = address {
            throw TorusError(.invalidArgument, operation: .bind, address: address,
                             detail: "a Unix-domain path takes one listener; spread its connections with init(bindingTo:group:) instead")
        }
        var options = options
        options.reusePort = true
        var listeners: [Listener] = []
        do {
            for loop in group.loops {
                // Port 0: the others bind the port the first one got.
                let bindTo = listeners.first.map { address.withPort($0.localAddress.port ?? 0) } ?? address
                listeners.append(try await Listener(bindingTo: bindTo, backlog: backlog, options: options, on: loop, logger: logger))
            }
        } catch {
            for listener in listeners { await listener.close() }
            throw error
        }
        return listeners
    }

    private init(
        address: SocketAddress, backlog: Int32, options: Options, loop: EventLoop,
        connectionLoops: [EventLoop], logger: Logger
    ) throws {
        let fd = try SocketSyscalls.makeSocket(family: address.family, kind: .stream, for: loop)
        do {
            if address.family != AF_UNIX {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, CInt(options.reuseAddress ? 1 : 0))
                if options.reusePort {
                    try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, CInt(1))
                }
            }
            if address.family == AF_INET6, let ipv6Only = options.ipv6Only {
                try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, CInt(ipv6Only ? 1 : 0))
            }
            try SocketSyscalls.bind(fd, to: address)
            try SocketSyscalls.listen(fd, backlog: backlog, address: address)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.eventLoop = loop
        self.connectionLoops = connectionLoops
        self.localAddress = SocketSyscalls.localAddress(fd) ?? address
        // The bound address, so that a listener on port 0 logs the port it got.
        var logger = logger
        logger[metadataKey: "listener"] = "\(localAddress)"
        self.options = options
        let unixPath: String? = if case .unix(let path) = address { path } else { nil }
        let pauses = Counter(
            label: "torus.listener.accept.pauses",
            dimensions: [("listener", "\(localAddress)"), ("reason", "descriptors")],
            factory: options.metricsFactory ?? MetricsSystem.factory)
        self.core = ListenerCore(fd: fd, loop: loop, unixPath: unixPath, options: options, logger: logger, pauses: pauses)
    }

    deinit {
        if !isClosed {
            let core = self.core
            eventLoop.execute { core.abandon() }
        }
    }

    /// Waits for the next connection.
    ///
    /// - Returns: The connection, or nil once the listener is closed.
    /// - Throws: `CancellationError` if the task is cancelled while waiting (the listener
    ///   stays usable), or a ``TorusError`` if the socket failed for good.
    public func accept() async throws -> Connection? {
        while true {
            guard let fd = try await core.next() else { return nil }
            if let connection = adopt(fd) { return connection }
        }
    }

    /// Wraps an accepted descriptor; nil (and the descriptor closed) if the peer is already
    /// gone.
    private func adopt(_ fd: CInt) -> Connection? {
        guard let remote = SocketSyscalls.remoteAddress(fd) else {
            eventLoop.closeDetached(fd)
            return nil
        }
        let loop = connectionLoops[nextLoop]
        nextLoop = nextLoop + 1 == connectionLoops.count ? 0 : nextLoop + 1
        do {
            try options.connectionOptions.apply(to: fd, isTCP: localAddress.family != AF_UNIX)
        } catch {
            core.logger.debug("dropping accepted connection: \(error)")
            eventLoop.closeDetached(fd)
            return nil
        }
        return Connection(adopting: fd, on: loop, localAddress: SocketSyscalls.localAddress(fd) ?? localAddress, remoteAddress: remote, options: options.connectionOptions)
    }

    /// Stops accepting and closes the socket. Every `for try await` over this listener ends,
    /// and connections accepted but not yet handed out are closed. Connections already
    /// handed out are not affected. A Unix-domain listener also removes its socket file.
    public func close() async {
        isClosed = true
        await core.close()
    }

    /// Stops accepting new connections until ``resumeAccepting()``: the kernel's backlog
    /// holds them meanwhile. Connections already accepted are still handed out.
    public func pauseAccepting() {
        core.hold()
    }

    /// Accepts again after ``pauseAccepting()``.
    public func resumeAccepting() {
        core.resume()
    }

    /// An iterator over the connections the listener accepts, until it is closed.
    public nonisolated func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(listener: self)
    }

    /// Iterates the accepted connections; ends when the listener is closed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let listener: Listener

        /// The next accepted connection, or nil once the listener is closed. Throws as
        /// ``Listener/accept()``.
        public mutating func next() async throws -> Connection? {
            try await listener.accept()
        }

        /// The next accepted connection, or nil once the listener is closed. Throws as
        /// ``Listener/accept()``.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Connection? {
            try await listener.accept()
        }
    }
}

extension Listener: CustomStringConvertible {
    /// `Listener(ADDRESS)`, with the bound address.
    public nonisolated var description: String { "Listener(\(localAddress))" }
}
