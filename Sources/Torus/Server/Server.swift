public import Logging
import CoreMetrics
import Synchronization

/// Serves the connections one or more ``Listener``s accept: one child task per connection,
/// running isolated to the connection on its event loop, with a connection limit, idle, read
/// and write timeouts, metrics, and graceful shutdown.
///
/// ```swift
/// let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 7000))
/// let server = Server(listener: listener, configuration: .init(maxConnections: 10_000, idleTimeout: .seconds(60)))
/// try await server.run { connection in          // isolated to the connection
///     while let bytes = try await connection.receive() {
///         try await connection.send(bytes)
///     }
/// }
/// ```
///
/// To use every core, give the server one listener per loop of a group
/// (``Listener/perLoop(bindingTo:backlog:options:group:logger:)``): each accepts on its own
/// loop, where its connections then live, so nothing crosses threads; or one listener that
/// spreads its connections over a group (``Listener/init(bindingTo:backlog:options:group:logger:)``).
///
/// ``run(_:)`` returns once the server has shut down and every handler has ended. A graceful
/// shutdown begins with ``shutdown(gracePeriod:)`` or when the task running ``run(_:)`` is
/// cancelled: the listener closes, every connection being served starts draining
/// (``Connection/isDraining``: once the bytes already received are handed out, reads return
/// end of stream instead of waiting, while writes go on), running handlers get the grace
/// period to finish, and those still running then are cancelled. A handler that reads until
/// end of stream therefore finishes the answer it is writing and ends, and an idle keep-alive
/// connection ends at once. The server closes each connection after its handler returns or
/// throws; an error thrown by a handler ends that connection only.
public final class Server: Sendable {
    /// The listeners whose connections this server serves; the server closes them on shutdown.
    public let listeners: [Listener]
    /// The server's limits and timeouts.
    public let configuration: Configuration
    private let logger: Logger
    private let metrics: ServerMetrics
    /// The connections being served, one registry per connection loop, by loop.
    private let registries: [ObjectIdentifier: LoopConnections]
    private let state = AnnotatedMutex(State())

    private struct State {
        var phase = Phase.ready
        var hasRun = false
        /// Connections being served.
        var active = 0
        /// Accept loops holding an accepted connection until a handler ends (at the limit).
        var slotWaiters: [CheckedContinuation<Bool, Never>] = []
        /// The first error that ended an accept loop.
        var acceptFailure: (any Error)?
        /// The task running the accept loop and the handlers.
        var serving: Task<Void, any Error>?
        /// Cancels `serving` when the grace period ends.
        var deadline: Task<Void, Never>?
        /// Closes the listeners when the shutdown begins.
        var closing: Task<Void, Never>?
    }

    private enum Phase { case ready, running, shuttingDown, finished }

    /// Creates a server for the connections `listener` accepts; ``run(_:)`` starts it.
    ///
    /// - Parameters:
    ///   - listener: The listener to accept from. Its ``Listener/connectionLoops`` are where
    ///     connections, and so their handlers, run.
    ///   - configuration: Limits, timeouts and the grace period.
    ///   - logger: Where shutdown, limit pauses and handler errors are logged; never per byte.
    public convenience init(listener: Listener, configuration: Configuration = .init(), logger: Logger = Logger(label: "torus.server")) {
        self.init(listeners: [listener], configuration: configuration, logger: logger)
    }

    /// Creates a server for the connections several listeners accept (one per loop, say), with
    /// one connection limit, one shutdown and one set of metrics for all; ``run(_:)`` starts
    /// it. Each listener is accepted from on its own loop.
    ///
    /// - Parameters:
    ///   - listeners: The listeners to accept from; at least one. Metrics and logs name the
    ///     first one's address.
    ///   - configuration: Limits, timeouts and the grace period.
    ///   - logger: Where shutdown, limit pauses and handler errors are logged; never per byte.
    public init(listeners: [Listener], configuration: Configuration = .init(), logger: Logger = Logger(label: "torus.server")) {
        precondition(!listeners.isEmpty, "a Server needs at least one listener")
        self.listeners = listeners
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "listener"] = "\(listeners[0].localAddress)"
        self.logger = logger
        self.metrics = ServerMetrics(listener: listeners[0].localAddress, factory: configuration.metricsFactory ?? MetricsSystem.factory)
        var registries: [ObjectIdentifier: LoopConnections] = [:]
        for loop in listeners.flatMap(\.connectionLoops) where registries[ObjectIdentifier(loop)] == nil {
            registries[ObjectIdentifier(loop)] = LoopConnections(loop: loop)
        }
        self.registries = registries
    }

    /// Connections being served now.
    public var connectionCount: Int { state.withLock { $0.active } }

    /// Whether a shutdown has begun.
    public var isShuttingDown: Bool { state.withLock { $0.phase == .shuttingDown || $0.phase == .finished } }

    /// Accepts connections and serves each with `handler` in a child task of its own, until
    /// the server shuts down; returns once every handler has ended and the listener is
    /// closed. A server runs once.
    ///
    /// - Parameter handler: Serves one connection, isolated to it (every read and write is a
    ///   direct call on the connection's loop). The server closes the connection when the
    ///   handler returns or throws.
    /// - Throws: The ``TorusError`` that made the listener fail for good, after the running
    ///   handlers have ended. Shutting down, by ``shutdown(gracePeriod:)`` or by
    ///   cancellation, is not an error.
    public func run(_ handler: @escaping @Sendable (isolated Connection) async throws -> Void) async throws {
        let shouldServe = state.withLock { state in
            precondition(!state.hasRun, "a Server runs once")
            state.hasRun = true
            guard state.phase == .ready else { return false }
            state.phase = .running
            return true
        }
        if shouldServe {
            logger.info("serving", metadata: [
                "engine": "\(listeners[0].eventLoop.engine)",
                "listeners": "\(listeners.count)",
                "loops": "\(registries.count)",
                "maxConnections": "\(configuration.maxConnections.map(String.init) ?? "none")",
            ])
            // Not a child of the caller's task: cancelling the caller starts a graceful
            // shutdown instead of cancelling every handler at once.
            let serving = Task(executorPreference: listeners[0].eventLoop) { try await self.serve(handler) }
            state.withLock { $0.serving = serving }
            try await withTaskCancellationHandler {
                try await serving.value
            } onCancel: {
                self.shutdown()
            }
        }
        let (deadline, closing) = state.withLock { state in
            state.phase = .finished
            return (state.deadline, state.closing)
        }
        deadline?.cancel()
        if let closing {
            await closing.value
        } else {
            for listener in listeners { await listener.close() }
        }
        logger.info("stopped")
    }

    /// Begins a graceful shutdown and returns at once: the listeners close, every connection
    /// being served starts draining (its reads return end of stream once the bytes already
    /// received are handed out; see ``Connection/isDraining``), running handlers get
    /// `gracePeriod` (by default the configuration's) to finish, and those still running then
    /// are cancelled. ``run(_:)`` returns when it is done. Calling it again, or after the
    /// server stopped, does nothing.
    public func shutdown(gracePeriod: Duration? = nil) {
        let gracePeriod = gracePeriod ?? configuration.shutdownGracePeriod
        let loop = listeners[0].eventLoop
        let (began, slotWaiters, active) = state.withLock { state -> (Bool, [CheckedContinuation<Bool, Never>], Int) in
            guard state.phase == .ready || state.phase == .running else { return (false, [], 0) }
            state.phase = .shuttingDown
            state.closing = Task {
                for listener in self.listeners { await listener.close() }
            }
            // A timer on a loop: a cancelled shutdown deadline leaves nothing behind.
            state.deadline = Task(executorPreference: loop) {
                guard (try? await loop.sleep(for: gracePeriod)) != nil else { return }
                self.cancelHandlers()
            }
            defer { state.slotWaiters.removeAll() }
            return (true, state.slotWaiters, state.active)
        }
        guard began else { return }
        logger.info("shutting down", metadata: ["connections": "\(active)", "gracePeriod": "\(gracePeriod)"])
        for waiter in slotWaiters { waiter.resume(returning: false) }
        // Handlers learn of the shutdown as end of stream: idle keep-alive connections end
        // now instead of holding the shutdown for the whole grace period. On each loop, where
        // its connections live and register: a handler that registers after this drain ran
        // starts out draining.
        for registry in registries.values {
            registry.loop.execute { registry.drain() }
        }
    }

    private func cancelHandlers() {
        let (serving, active) = state.withLock { ($0.serving, $0.active) }
        if active > 0 { logger.notice("grace period over: cancelling \(active) handler(s)") }
        serving?.cancel()
    }

    // MARK: Serving

    private func serve(_ handler: @escaping @Sendable (isolated Connection) async throws -> Void) async throws {
        await withTaskGroup(of: Void.self) { sweepers in
            for registry in registries.values {
                sweepers.addTask(executorPreference: registry.loop) { await self.sweep(registry) }
            }
            // One accept loop per listener, on the listener's loop, each the parent of the
            // handlers of the connections it accepts.
            await withDiscardingTaskGroup { acceptors in
                for listener in listeners {
                    acceptors.addTask(executorPreference: listener.eventLoop) {
                        await withDiscardingTaskGroup { handlers in
                            do {
                                try await self.acceptConnections(from: listener, into: &handlers, handler)
                            } catch {
                                self.state.withLock { state in
                                    if state.acceptFailure == nil { state.acceptFailure = error }
                                }
                            }
                        }
                    }
                }
            }
            sweepers.cancelAll()
        }
        if let acceptFailure = state.withLock({ $0.acceptFailure }) {
            throw acceptFailure
        }
    }

    private func acceptConnections(
        from listener: Listener,
        into handlers: inout DiscardingTaskGroup,
        _ handler: @escaping @Sendable (isolated Connection) async throws -> Void
    ) async throws {
        while !isShuttingDown {
            let connection: Connection?
            do {
                connection = try await listener.accept()
            } catch {
                if error is CancellationError || isShuttingDown { return }
                logger.error("listener failed: \(error)")
                shutdown()
                throw error
            }
            guard let connection else { return }
            guard await admit() else {
                // Shutting down: this one never gets a handler.
                await connection.close()
                return
            }
            metrics.accepted.increment()
            metrics.active.increment()
            let registry = registries[ObjectIdentifier(connection.eventLoop)]!
            handlers.addTask(executorPreference: connection.eventLoop) {
                await self.serve(connection, in: registry, with: handler)
            }
        }
    }

    private func serve(
        _ connection: Connection,
        in registry: LoopConnections,
        with handler: @escaping @Sendable (isolated Connection) async throws -> Void
    ) async {
        let (received, sent) = await connection.withIsolation { connection in
            if let readTimeout = configuration.readTimeout { connection.setReadTimeout(readTimeout) }
            if let writeTimeout = configuration.writeTimeout { connection.setWriteTimeout(writeTimeout) }
            registry.register(connection)
            do {
                try await handler(connection)
            } catch {
                metrics.recordError(error)
                switch error {
                case is any ConnectionEndingError, is CancellationError:
                    logger.debug("connection ended: \(error)", metadata: ["peer": "\(connection.remoteAddress)"])
                default:
                    logger.warning("handler failed: \(error)", metadata: ["peer": "\(connection.remoteAddress)"])
                }
            }
            await connection.close()
            return registry.unregister(connection)
        }
        if received > 0 { metrics.bytesReceived.increment(by: received) }
        if sent > 0 { metrics.bytesSent.increment(by: sent) }
        metrics.active.decrement()
        metrics.closed.increment()
        endConnection()
    }

    /// Closes idle connections and reports bytes, every second or a quarter of the idle
    /// timeout, whichever is shorter, until cancelled.
    private func sweep(_ registry: LoopConnections) async {
        let interval = min(.seconds(1), configuration.idleTimeout.map { max($0 / 4, .milliseconds(5)) } ?? .seconds(1))
        while (try? await registry.loop.sleep(for: interval)) != nil {
            let (received, sent, idle) = registry.sweep(idleTimeout: configuration.idleTimeout)
            if received > 0 { metrics.bytesReceived.increment(by: received) }
            if sent > 0 { metrics.bytesSent.increment(by: sent) }
            guard let idleTimeout = configuration.idleTimeout else { continue }
            for connection in idle {
                logger.debug("closing idle connection", metadata: ["peer": "\(connection.remoteAddress)"])
                await connection.closeForBeingIdle(after: idleTimeout)
            }
        }
    }

    // MARK: Connection limit

    /// Counts a new connection in; at the connection limit, first pauses accepting on every
    /// listener and waits for a handler to end. False once the server is shutting down.
    private func admit() async -> Bool {
        let limit = configuration.maxConnections ?? .max
        let admitted = state.withLock { state -> Bool? in
            guard state.phase == .running else { return false }
            guard state.active < limit else { return nil }
            state.active += 1
            return true
        }
        if let admitted { return admitted }
        for listener in listeners { await listener.pauseAccepting() }
        metrics.limitPauses.increment()
        logger.debug("connection limit reached: accepting paused", metadata: ["maxConnections": "\(limit)"])
        let granted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let result = state.withLock { state -> Bool? in
                guard state.phase == .running else { return false }
                if state.active < limit {
                    state.active += 1
                    return true
                }
                state.slotWaiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(returning: result) }
        }
        if granted, state.withLock({ $0.slotWaiters.isEmpty }) {
            for listener in listeners { await listener.resumeAccepting() }
        }
        return granted
    }

    /// Counts a connection out; at the limit, lets the longest-waiting accepted one in.
    private func endConnection() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.slotWaiters.isEmpty else {
                state.active -= 1
                return nil
            }
            // The slot passes straight to the waiting connection: `active` stays.
            return state.slotWaiters.removeFirst()
        }
        waiter?.resume(returning: true)
    }
}

extension Listener {
    /// Serves every connection this listener accepts with `handler`, in a child task of its
    /// own, until the task running this is cancelled (a graceful shutdown: see ``Server``).
    ///
    /// ```swift
    /// try await listener.serve(configuration: .init(idleTimeout: .seconds(30))) { connection in
    ///     while let bytes = try await connection.receive() {
    ///         try await connection.send(bytes)
    ///     }
    /// }
    /// ```
    ///
    /// Use a ``Server`` to shut down by a method call or to read its state.
    public nonisolated func serve(
        configuration: Server.Configuration = .init(),
        logger: Logger = Logger(label: "torus.server"),
        _ handler: @escaping @Sendable (isolated Connection) async throws -> Void
    ) async throws {
        try await Server(listener: self, configuration: configuration, logger: logger).run(handler)
    }
}
