import CURing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One long-lived thread that owns one I/O engine (an io_uring, or an epoll instance where
/// io_uring is forbidden) and runs Swift jobs.
///
/// An event loop is both a `SerialExecutor` (the ``Listener``, ``Connection`` and
/// ``DatagramSocket`` actors run on it, so their code executes on the ring's thread) and a
/// `TaskExecutor` (a task can prefer it, so its non-isolated code runs there too and calls
/// into those actors cost no thread hop). Each turn of the loop runs the jobs that are ready,
/// then hands the operations they prepared to its engine in one system call that also waits
/// (`io_uring_enter`, or `epoll_wait`), and resumes the tasks whose operations completed.
///
/// Loops are created by an ``EventLoopGroup``; use ``EventLoopGroup/shared`` unless you need
/// a group of your own.
public final class EventLoop: @unchecked Sendable {
    // @unchecked Sendable: the stored properties below the "loop thread only" mark are read
    // and written on the loop's own thread exclusively (every entry point checks
    // `isInEventLoop` or is only reachable from the loop's jobs and completions). State shared
    // with other threads is in `remote` (a Mutex) and `wakePending` (an Atomic).

    /// Tuning for the loops of a group.
    public struct Configuration: Sendable {
        /// Settings that only the io_uring engine uses.
        public struct IOUring: Sendable {
            /// Submission-queue entries per ring; the completion queue gets four times as many.
            public var submissionQueueEntries: UInt32 = 1024

            /// The default settings.
            public init() {}
        }

        /// Settings of the io_uring engine; the epoll engine ignores them.
        public var ioUring = IOUring()
        /// Completions reaped and jobs run at most per loop turn, so that one busy connection
        /// cannot starve the others.
        public var turnBudget: Int = 1024
        /// Receive buffers per loop, shared by its connections (a power of two, at most 32768).
        public var receiveBufferCount: Int = 1024
        /// Bytes per receive buffer: the most one receive completion carries.
        public var receiveBufferSize: Int = 16 * 1024
        /// Receive buffers one connection may hold before it stops receiving until its reader
        /// consumes some, so that one slow reader cannot take every buffer.
        public var receiveBuffersPerConnection: Int = 16

        /// Creates a configuration with the default values; change them through the
        /// properties.
        public init() {}
    }

    /// This loop's position in its group.
    public let index: Int
    /// The engine this loop runs.
    public var engine: Engine { io.kind }
    /// What the kernel's io_uring offered this loop's ring; nil when the loop runs on epoll.
    public var ioUringCapabilities: IOUringCapabilities? { (io as? IOUringEngine)?.capabilities }

    let configuration: Configuration
    /// The engine that performs this loop's I/O.
    let io: any IOEngine
    private let threadID: pthread_t
    private let remote = AnnotatedMutex(RemoteState())
    private let wakePending = Atomic<Bool>(false)
    /// Set once the loop thread has left its run loop, for good.
    private let hasStopped = Atomic<Bool>(false)

    // --- loop thread only ---
    //
    // `@exclusivity(unchecked)`: these are touched several times per operation, and a
    // dynamic exclusivity check costs about as much as the access. They are confined to the
    // loop thread, and no access to one of them overlaps another access to the same one
    // (no mutating method on them calls out to code that reaches them again), which the
    // compiler's static checks and the checked builds before this change confirmed.
    /// Receive buffers named by completions and not given back yet.
    @exclusivity(unchecked) var receiveBuffersLent = 0
    /// Receivers that ran out of buffers, waiting for one to come back.
    @exclusivity(unchecked) var receiveBufferWaiters = FIFO<any ReceiveBufferWaiter>(initialCapacity: 16)
    @exclusivity(unchecked) private var table = CompletionTable(initialCapacity: 1024)
    @exclusivity(unchecked) private var readyJobs = FIFO<UnownedJob>(initialCapacity: 1024)
    private var remoteScratch: [RemoteWork] = []
    @exclusivity(unchecked) private var isStopping = false

    /// Work handed to the loop by other threads.
    private enum RemoteWork {
        case job(UnownedJob)
        case cancel(OperationID)
        case close(CInt)
        case run(@Sendable () -> Void)
        case returnBuffer(any ReceiveBufferOwner, UInt16)
        case stop
    }

    private enum LateWork {
        case job(UnownedJob)
        case run(@Sendable () -> Void)
    }

    private struct RemoteState {
        var work: [RemoteWork] = []
        var hasStopped = false
        /// Jobs and closures for this loop that arrived after it stopped (see `runAfterStop`).
        var lateWork: [LateWork] = []
        var isRunningLateWork = false
        var exitWaiters: [UnsafeContinuation<Void, Never>] = []
    }

    /// Creates the loop on the calling thread, which becomes its loop thread.
    private init(index: Int, io: any IOEngine, configuration: Configuration) {
        self.index = index
        self.io = io
        self.configuration = configuration
        self.threadID = pthread_self()
    }

    /// Whether the caller runs on this loop's thread.
    public var isInEventLoop: Bool { pthread_equal(pthread_self(), threadID) != 0 }

    /// Whether the caller is the loop itself, running: its thread, before it stopped. Only
    /// then may loop-confined state be touched directly.
    var isRunningLoop: Bool { isInEventLoop && !hasStopped.load(ordering: .acquiring) }

    /// Checks that loop-confined state may be touched here: on the loop thread, or anywhere
    /// once the loop has stopped (its late jobs run serially on other threads).
    @inline(__always)
    func assertInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(isInEventLoop || hasStopped.load(ordering: .acquiring), "must run on \(self)", file: file, line: line)
    }
}

// MARK: - Thread and run loop

extension EventLoop {
    /// Passes the loop created on a new thread back to the thread that asked for it.
    final class Startup: @unchecked Sendable {
        // @unchecked Sendable: `result` is written by the new thread before `sem_post` and read
        // by the creating thread after `sem_wait`, which orders the two.
        let index: Int
        let engine: Engine
        let configuration: Configuration
        var result: Result<EventLoop, TorusError>?
        private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

        init(index: Int, engine: Engine, configuration: Configuration) {
            self.index = index
            self.engine = engine
            self.configuration = configuration
            sem_init(semaphore, 0, 0)
        }

        deinit {
            sem_destroy(semaphore)
            semaphore.deallocate()
        }

        func signal() { sem_post(semaphore) }
        func wait() { while sem_wait(semaphore) != 0 {} }
    }

    /// Starts a thread, creates an engine and a loop on it, and returns the loop once it runs.
    static func start(index: Int, engine: Engine, configuration: Configuration) throws(TorusError) -> (EventLoop, pthread_t) {
        let startup = Startup(index: index, engine: engine, configuration: configuration)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, eventLoopThreadMain, Unmanaged.passRetained(startup).toOpaque())
        guard rc == 0 else {
            throw TorusError(.system, operation: .eventLoopSetup, errno: rc, detail: "pthread_create failed")
        }
        startup.wait()
        switch startup.result! {
        case .success(let loop): return (loop, thread)
        case .failure(let error):
            pthread_join(thread, nil)
            throw error
        }
    }

    /// The body of a loop thread: set up, report, run until stopped.
    fileprivate static func threadMain(_ startup: Startup) {
        torus_set_thread_name("torus-loop-\(startup.index)")
        let loop: EventLoop
        do throws(TorusError) {
            let io: any IOEngine = switch startup.engine {
            case .ioUring: try IOUringEngine(configuration: startup.configuration)
            case .epoll: try EpollEngine(configuration: startup.configuration)
            }
            loop = EventLoop(index: startup.index, io: io, configuration: startup.configuration)
        } catch {
            startup.result = .failure(error)
            startup.signal()
            return
        }
        pthread_setspecific(currentLoopKey, Unmanaged.passUnretained(loop).toOpaque())
        startup.result = .success(loop)
        startup.signal()
        loop.run()
        pthread_setspecific(currentLoopKey, nil)
    }

    private func run() {
        while true {
            if wakePending.load(ordering: .acquiring) { drainRemoteWork() }
            runReadyJobs()
            if isStopping, table.liveCount == 0, readyJobs.isEmpty, markStoppedIfIdle() { break }
            io.runTurn(waiting: readyJobs.isEmpty) { id, completion in dispatch(completion, for: id) }
        }
        io.close()
        let waiters = remote.withLock { state in
            defer { state.exitWaiters.removeAll() }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Runs the jobs that were ready when the turn began, with this loop as both their serial
    /// executor and their task executor. (With the serial executor alone, a task that prefers
    /// this loop was re-enqueued at every step between the task and an actor: 11 loop turns
    /// per nop round trip instead of 1.)
    private func runReadyJobs() {
        let serialExecutor = asUnownedSerialExecutor()
        let taskExecutor = asUnownedTaskExecutor()
        var budget = min(readyJobs.count, configuration.turnBudget)
        while budget > 0, let job = readyJobs.popFirst() {
            budget -= 1
            job.runSynchronously(isolatedTo: serialExecutor, taskExecutor: taskExecutor)
        }
    }

    private func dispatch(_ completion: Completion, for id: OperationID) {
        if completion.flags.contains(.buffer) { receiveBuffersLent += 1 }
        guard let state = table.state(of: id) else { return }
        var completion = completion
        if isStopping, completion.result == -ECANCELED { completion.result = -ESHUTDOWN }
        switch state {
        case .awaiting(let continuation, _, _):
            table.release(id)
            continuation.resume(returning: completion)
        case .handler(let handler, _):
            if !completion.hasMore { table.release(id) }
            handler.handle(completion, for: id, on: self)
        case .reserved, .free:
            break
        }
    }

    // MARK: Wake-ups from other threads

    private func enqueueRemote(_ work: RemoteWork) {
        let accepted = remote.withLock { state in
            guard !state.hasStopped else { return false }
            state.work.append(work)
            return true
        }
        guard accepted else {
            switch work {
            case .job(let job):
                runAfterStop(.job(job))
            case .run(let work):
                runAfterStop(.run(work))
            case .close(let fd):
                // No ring is left to close through.
                Glibc.close(fd)
            case .cancel, .stop, .returnBuffer:
                // Nothing is in flight any more, and the buffers are not needed again.
                break
            }
            return
        }
        // Only the first enqueue after the loop last looked needs to wake it.
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            wake()
        }
    }

    /// Ends the loop's wait. From another loop's thread, that loop's engine may do it with no
    /// system call of its own (io_uring: a message from its ring, which goes in with its next
    /// submission); otherwise the engine's eventfd is written.
    private func wake() {
        if let sender = EventLoop.current, sender !== self, sender.isRunningLoop, !sender.isStopping,
           sender.io.postWake(to: io) {
            return
        }
        io.wake()
    }

    /// The loop whose thread this is, if any.
    static var current: EventLoop? {
        guard let pointer = pthread_getspecific(currentLoopKey) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Runs work that arrived after the loop stopped. Actors on this loop still get their
    /// jobs run, one at a time, on the thread that enqueued them (another thread arriving
    /// meanwhile only queues its work behind): every engine operation then fails at once with
    /// `ESHUTDOWN`, so the code finds out and ends, instead of the process trapping on an
    /// executor that is gone. Clean-up closures (`execute`) go through the same line, so they
    /// never touch loop-confined state at the same time as a job.
    private func runAfterStop(_ work: LateWork) {
        let shouldRun = remote.withLock { state in
            state.lateWork.append(work)
            if state.isRunningLateWork { return false }
            state.isRunningLateWork = true
            return true
        }
        guard shouldRun else { return }
        // The runtime calls `enqueue` through an unowned reference, and running late work can
        // release the last reference to this loop (a dropped connection's clean-up): keep it
        // alive until the line is empty.
        withExtendedLifetime(self) { runLateWork() }
    }

    private func runLateWork() {
        let serialExecutor = asUnownedSerialExecutor()
        let taskExecutor = asUnownedTaskExecutor()
        while let next = remote.withLock({ state -> LateWork? in
            if state.lateWork.isEmpty {
                state.isRunningLateWork = false
                return nil
            }
            return state.lateWork.removeFirst()
        }) {
            switch next {
            case .job(let job): job.runSynchronously(isolatedTo: serialExecutor, taskExecutor: taskExecutor)
            case .run(let work): work()
            }
        }
    }

    private func drainRemoteWork() {
        wakePending.store(false, ordering: .releasing)
        remote.withLock { state in swap(&state.work, &remoteScratch) }
        for work in remoteScratch {
            switch work {
            case .job(let job): readyJobs.append(job)
            case .cancel(let id): cancelOnLoop(id)
            case .close(let fd): closeDetachedOnLoop(fd)
            case .run(let work): work()
            case .returnBuffer(let owner, let id): owner.returnBuffer(id)
            case .stop: beginStopping()
            }
        }
        remoteScratch.removeAll(keepingCapacity: true)
    }

    // MARK: Shutdown

    /// Asks the loop to stop: pending operations are cancelled and end with a shutdown error,
    /// the loop runs until every one has completed and no job is left, then its thread exits.
    func requestStop() { enqueueRemote(.stop) }

    /// Suspends until the loop thread has left its run loop.
    func waitUntilStopped() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let stopped = remote.withLock { state in
                if state.hasStopped { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if stopped { continuation.resume() }
        }
    }

    private func beginStopping() {
        guard !isStopping else { return }
        isStopping = true
        for id in table.liveOperations {
            if case .awaiting(let continuation, inKernel: false, _) = table.state(of: id) {
                table.release(id)
                continuation.resume(returning: .loopShutDown)
            } else {
                cancelOnLoop(id)
            }
        }
    }

    private func markStoppedIfIdle() -> Bool {
        let stopped = remote.withLock { state in
            guard state.work.isEmpty else { return false }
            state.hasStopped = true
            return true
        }
        if stopped { hasStopped.store(true, ordering: .releasing) }
        return stopped
    }
}

/// The thread-specific key under which each loop thread keeps its loop (unretained: the
/// thread clears it before the loop can go away).
private let currentLoopKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
    return key
}()

/// The C entry point of a loop thread. A nonisolated global function, as C callbacks must be.
private func eventLoopThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let startup = Unmanaged<EventLoop.Startup>.fromOpaque(argument!).takeRetainedValue()
    EventLoop.threadMain(startup)
    return nil
}

// MARK: - Submitting requests

extension EventLoop {
    /// Suspends the task until operation `id` (reserved) completes. `start` runs inside the
    /// continuation, once the slot awaits: it submits the request, or registers the wait. If
    /// the task is cancelled meanwhile, the operation is cancelled and the call still waits
    /// for its completion. A cancellation that came before `start` skips it.
    ///
    /// The closures use `isolation`, so they run isolated to the caller's actor (an async
    /// closure that does not may run on the global executor).
    private func awaitCompletion(
        of id: OperationID,
        inKernel: Bool,
        isolation: isolated (any Actor)?,
        _ start: () -> Void
    ) async -> Completion {
        await onThisLoop(isolation: isolation) {
            await withTaskCancellationHandler(operation: {
                await withUnsafeContinuation(isolation: isolation) { continuation in
                    guard case .reserved(cancelRequested: false) = table.state(of: id) else {
                        table.release(id)
                        continuation.resume(returning: isStopping ? .loopShutDown : .cancelled)
                        return
                    }
                    table.setState(.awaiting(continuation, inKernel: inKernel, cancelRequested: false), for: id)
                    start()
                }
            }, onCancel: {
                self.requestCancel(id)
            }, isolation: isolation)
        }
    }

    /// Runs `body` with this loop as the task's preferred executor.
    ///
    /// A continuation resumed from the loop sends its task to the task's preferred executor,
    /// or to the global pool when it has none; only then does the task hop back to its actor.
    /// Preferring this loop for the wait keeps the whole round trip on the loop thread, for
    /// every caller. When the task already prefers this loop the preference is not pushed
    /// again.
    ///
    /// `body` must use `isolation`, so that it runs isolated to the caller's actor.
    @inline(__always)
    private func onThisLoop(
        isolation: isolated (any Actor)?,
        _ body: () async -> Completion
    ) async -> Completion {
        if isPreferredByCurrentTask { return await body() }
        return await withTaskExecutorPreference(self, isolation: isolation, operation: body)
    }

    /// Whether the current task already prefers this loop (``Connection/withIsolation(_:)``
    /// arranges that for a handler's whole body): pushing the same preference again would
    /// only add a task status record per wait.
    private var isPreferredByCurrentTask: Bool {
        let me = asUnownedTaskExecutor()
        return withUnsafeCurrentTask { task in task?.unownedTaskExecutor == me }
    }

    /// Submits one request with this turn's batch and suspends until its completion arrives.
    ///
    /// If the task is cancelled meanwhile, an `ASYNC_CANCEL` is submitted and the call still
    /// waits for the request's own completion, so buffers the request uses stay valid until
    /// the kernel is done with them. With `timeout`, a linked timeout cancels the request
    /// when it expires; the completion then carries `-ECANCELED`.
    ///
    /// A request submitted with `cancellable: false` ignores task cancellation (closing a
    /// descriptor must happen whatever the caller's task is doing).
    ///
    /// `isolation` is the caller's actor (a socket actor on this loop); the call never leaves
    /// it, so the whole round trip stays on the loop thread.
    @inline(__always)
    func submit(
        _ operation: IOOperation,
        timeout: Duration? = nil,
        cancellable: Bool = true,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        assertInEventLoop()
        if isStopping { return .loopShutDown }
        guard cancellable else {
            let id = table.reserve()
            return await onThisLoop(isolation: isolation) {
                await withUnsafeContinuation(isolation: isolation) { continuation in
                    table.setState(.awaiting(continuation, inKernel: true, cancelRequested: false), for: id)
                    io.prepare(operation, for: id, timeout: timeout)
                }
            }
        }
        if Task.isCancelled { return .cancelled }
        let id = table.reserve()
        return await awaitCompletion(of: id, inKernel: true, isolation: isolation) {
            io.prepare(operation, for: id, timeout: timeout)
        }
    }

    /// Submits an operation whose completions go to `handler` on the loop (a multishot
    /// operation or an internal timer). Returns nil when the loop is stopping.
    func submit(_ operation: IOOperation, handledBy handler: any CompletionHandler, timeout: Duration? = nil) -> OperationID? {
        assertInEventLoop()
        if isStopping { return nil }
        let id = table.reserve()
        table.setState(.handler(handler, cancelRequested: false), for: id)
        io.prepare(operation, for: id, timeout: timeout)
        return id
    }

    /// Hands `operation` to the engine with no one waiting for its completion (a detached
    /// close, a cancel of everything on a descriptor).
    func submitDetached(_ operation: IOOperation) {
        assertInEventLoop()
        io.prepareDetached(operation)
    }

    /// Suspends until loop-side code calls ``resume(_:with:)`` for the operation `register`
    /// is given. Task cancellation ends the wait at once with `-ECANCELED`.
    @inline(__always)
    func suspend(
        isolation: isolated (any Actor)? = #isolation,
        _ register: (OperationID) -> Void
    ) async -> Completion {
        assertInEventLoop()
        if isStopping { return .loopShutDown }
        if Task.isCancelled { return .cancelled }
        let id = table.reserve()
        return await awaitCompletion(of: id, inKernel: false, isolation: isolation) {
            register(id)
        }
    }

    /// Ends a wait started by ``suspend(_:)``. Returns false if that wait had already ended
    /// (it was cancelled), in which case `completion` was not delivered.
    @discardableResult
    func resume(_ id: OperationID, with completion: Completion) -> Bool {
        assertInEventLoop()
        guard case .awaiting(let continuation, inKernel: false, _) = table.state(of: id) else { return false }
        table.release(id)
        continuation.resume(returning: completion)
        return true
    }

    /// Cancels an operation from any thread. Its waiter or handler still sees its final
    /// completion.
    func requestCancel(_ id: OperationID) {
        if isRunningLoop {
            cancelOnLoop(id)
        } else {
            enqueueRemote(.cancel(id))
        }
    }

    private func cancelOnLoop(_ id: OperationID) {
        guard let state = table.state(of: id) else { return }
        switch state {
        case .reserved(cancelRequested: false):
            table.setState(.reserved(cancelRequested: true), for: id)
        case .awaiting(let continuation, inKernel: false, _):
            table.release(id)
            continuation.resume(returning: .cancelled)
        case .awaiting(let continuation, inKernel: true, cancelRequested: false):
            table.setState(.awaiting(continuation, inKernel: true, cancelRequested: true), for: id)
            io.cancel(id)
        case .handler(let handler, cancelRequested: false):
            table.setState(.handler(handler, cancelRequested: true), for: id)
            io.cancel(id)
        case .free, .reserved, .awaiting, .handler:
            break
        }
    }

    /// Closes `fd` through the engine without waiting for the result. Callable from any thread
    /// (deinitializers use it).
    func closeDetached(_ fd: CInt) {
        if isRunningLoop {
            closeDetachedOnLoop(fd)
        } else {
            enqueueRemote(.close(fd))
        }
    }

    /// Hands a receive-buffer return from another thread to the loop (no allocation, unlike
    /// `execute`).
    func returnBufferFromAnotherThread(_ id: UInt16, to owner: any ReceiveBufferOwner) {
        enqueueRemote(.returnBuffer(owner, id))
    }

    /// Runs `work` on the loop thread soon (at once when called there). For clean-up from
    /// deinitializers, which may run on any thread. If the loop has already stopped, `work`
    /// runs in line with the loop's late jobs (see `runAfterStop`).
    func execute(_ work: @escaping @Sendable () -> Void) {
        if isRunningLoop {
            work()
        } else {
            enqueueRemote(.run(work))
        }
    }

    private func closeDetachedOnLoop(_ fd: CInt) {
        if isStopping {
            Glibc.close(fd)
            return
        }
        io.prepareDetached(.close(fd))
    }
}

// MARK: - Executor

extension EventLoop: SerialExecutor, TaskExecutor {
    /// Schedules `job` to run on this loop's thread. Callable from any thread; the Swift
    /// runtime calls it for the tasks and actors that run on this loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isRunningLoop {
            readyJobs.append(job)
        } else {
            enqueueRemote(.job(job))
        }
    }

    /// This loop as the serial executor of an actor (its `unownedExecutor`).
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Stops the program unless the caller runs on this loop's thread, or the loop has
    /// stopped (its remaining jobs then run, one at a time, on the threads that enqueue
    /// them). Called by the Swift runtime for `assumeIsolated` and `preconditionIsolated`.
    public func checkIsolated() {
        assertInEventLoop()
    }
}

extension EventLoop: CustomStringConvertible {
    /// `EventLoop(INDEX)`, with the loop's ``index`` in its group.
    public var description: String { "EventLoop(\(index))" }
}

extension EventLoop: Hashable {
    /// Whether `lhs` and `rhs` are the same loop.
    public static func == (lhs: EventLoop, rhs: EventLoop) -> Bool { lhs === rhs }
    /// Hashes the loop's identity.
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
