import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of event loops, each a thread with its own engine: an io_uring, or an epoll
/// instance where io_uring is forbidden.
///
/// Most programs use ``shared``, started on first use with one loop per CPU core. A group of
/// your own is shut down with ``shutdown()`` once the tasks using its loops have ended.
///
/// Every loop of a group runs the same engine (``engine``), chosen when the group starts
/// (see ``EngineChoice``).
public final class EventLoopGroup: Sendable {
    /// The loops of this group, in index order.
    public let loops: [EventLoop]
    /// The engine every loop of this group runs.
    public let engine: EventLoop.Engine
    private let threads: [UInt]   // pthread_t values, for joining
    private let nextIndex = Atomic<Int>(0)
    private let state = AnnotatedMutex(State.running)
    private let isShared: Bool

    private enum State { case running, shuttingDown, shutDown }

    /// Starts `loopCount` loops, each on a thread of its own.
    ///
    /// - Parameters:
    ///   - loopCount: How many loops to start, at least 1; by default one per core.
    ///   - engine: The engine the loops run: by default io_uring where the kernel allows it and
    ///     epoll otherwise (the `TORUS_ENGINE` environment variable overrides that default).
    ///   - configuration: The engine and receive-buffer settings of every loop.
    /// - Throws: ``TorusError`` of kind ``TorusError/Kind/ioUringUnavailable`` with the reason
    ///   and the fix when io_uring was asked for and the kernel does not let this process use
    ///   it; ``TorusError/Kind/invalidArgument`` for a configuration or a `TORUS_ENGINE` value
    ///   that cannot work.
    public convenience init(
        loopCount: Int = EventLoopGroup.coreCount,
        engine: EngineChoice = .automatic,
        configuration: EventLoop.Configuration = .init()
    ) throws(TorusError) {
        try self.init(loopCount: loopCount, engine: engine, configuration: configuration, isShared: false)
    }

    private init(loopCount: Int, engine choice: EngineChoice, configuration: EventLoop.Configuration, isShared: Bool) throws(TorusError) {
        precondition(loopCount > 0, "an EventLoopGroup needs at least one loop")
        // A submission can take two entries (a request and its linked timeout).
        guard configuration.ioUring.submissionQueueEntries >= 2 else {
            throw TorusError(.invalidArgument, operation: .ringSetup,
                             detail: "submissionQueueEntries must be at least 2, not \(configuration.ioUring.submissionQueueEntries)")
        }
        let engine = try choice.resolve()
        var loops: [EventLoop] = []
        var threads: [UInt] = []
        for index in 0..<loopCount {
            do {
                let (loop, thread) = try EventLoop.start(index: index, engine: engine, configuration: configuration)
                loops.append(loop)
                threads.append(thread)
            } catch {
                for loop in loops { loop.requestStop() }
                for thread in threads { pthread_join(thread, nil) }
                throw error
            }
        }
        self.loops = loops
        self.engine = engine
        self.threads = threads
        self.isShared = isShared
    }

    /// The loops take turns: each call returns the next one.
    public func next() -> EventLoop {
        loops[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// Online CPU cores of this machine.
    public static var coreCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    private static let sharedGroup = Result<EventLoopGroup, TorusError> { () throws(TorusError) in
        try EventLoopGroup(loopCount: coreCount, engine: .automatic, configuration: .init(), isShared: true)
    }

    /// The process-wide group, started on first use with one loop per core. It is never shut
    /// down.
    ///
    /// - Throws: ``TorusError`` if its loops cannot start: of kind
    ///   ``TorusError/Kind/ioUringUnavailable`` if `TORUS_ENGINE=io_uring` asks for io_uring
    ///   where it cannot be used.
    public static var shared: EventLoopGroup {
        get throws(TorusError) { try sharedGroup.get() }
    }

    /// Stops every loop: pending operations are cancelled (their callers get a
    /// ``TorusError/Kind/eventLoopShutDown`` error), rings are closed and threads joined.
    ///
    /// Listeners and connections on the group's loops stay usable as objects afterwards:
    /// every operation on them fails at once with ``TorusError/Kind/eventLoopShutDown``, and
    /// `close()` still closes their descriptors. Their code then runs on whichever thread
    /// calls them, one job at a time.
    ///
    /// A second call returns at once, without waiting for the first to finish. Calling it on
    /// ``shared``, which is never shut down, or from one of the group's own loops stops the
    /// program.
    public func shutdown() async {
        guard beginShutdown() else { return }
        for loop in loops {
            precondition(!loop.isInEventLoop, "an EventLoopGroup cannot be shut down from one of its own loops")
            loop.requestStop()
        }
        for loop in loops { await loop.waitUntilStopped() }
        joinThreads()
    }

    /// ``shutdown()`` for code that cannot `await`: blocks the calling thread.
    public func syncShutdown() {
        guard beginShutdown() else { return }
        for loop in loops {
            precondition(!loop.isInEventLoop, "an EventLoopGroup cannot be shut down from one of its own loops")
            loop.requestStop()
        }
        joinThreads()
    }

    private func beginShutdown() -> Bool {
        precondition(!isShared, "the shared EventLoopGroup is never shut down")
        return state.withLock { state in
            guard state == .running else { return false }
            state = .shuttingDown
            return true
        }
    }

    private func joinThreads() {
        for thread in threads { pthread_join(thread, nil) }
        state.withLock { $0 = .shutDown }
    }
}
