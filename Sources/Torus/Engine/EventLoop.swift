import CURing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One long-lived thread that owns one io_uring and runs Swift jobs.
///
/// An event loop is both a `SerialExecutor` (the ``Listener``, ``Connection`` and
/// ``DatagramSocket`` actors run on it, so their code executes on the ring's thread) and a
/// `TaskExecutor` (a task can prefer it, so its non-isolated code runs there too and calls
/// into those actors cost no thread hop). Each turn of the loop runs the jobs that are ready, submits every request they
/// prepared together with the wait for completions in one `io_uring_enter`, then reaps
/// completions in a batch and resumes the tasks waiting for them.
///
/// Loops are created by an ``EventLoopGroup``; use ``EventLoopGroup/shared`` unless you need
/// a group of your own.
public final class EventLoop: @unchecked Sendable {
    // @unchecked Sendable: the stored properties below the "loop thread only" mark are read
    // and written on the loop's own thread exclusively (every entry point checks
    // `isInEventLoop` or is only reachable from the loop's jobs and completions). State shared
    // with other threads is in `remote` (a Mutex) and `wakePending` (an Atomic).

    /// Tuning for the rings of a group's loops.
    public struct Configuration: Sendable {
        /// Submission-queue entries per ring; the completion queue gets four times as many.
        public var submissionQueueEntries: UInt32 = 1024
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
    /// What the kernel's io_uring offered this loop's ring.
    public let capabilities: IOUringCapabilities

    let configuration: Configuration
    private let threadID: pthread_t
    private let wakeFD: CInt
    /// This loop's ring descriptor, for wake-ups posted by other loops' rings.
    private let ringFD: CInt
    /// Whether other loops may wake this one with `IORING_OP_MSG_RING` (Linux 5.18+).
    private let acceptsRingMessages: Bool
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
    @exclusivity(unchecked) private var ring: Ring
    let receiveBuffers: ProvidedBufferRing
    /// Receivers that ran out of buffers, waiting for one to come back.
    @exclusivity(unchecked) var receiveBufferWaiters = FIFO<any ReceiveBufferWaiter>(initialCapacity: 16)
    @exclusivity(unchecked) private var arena = SubmissionArena(capacity: 64 * 1024)
    @exclusivity(unchecked) private var table = CompletionTable(initialCapacity: 1024)
    @exclusivity(unchecked) private var readyJobs = FIFO<UnownedJob>(initialCapacity: 1024)
    private var remoteScratch: [RemoteWork] = []
    private let completionBatch: UnsafeMutableBufferPointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let wakeBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
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
    private init(index: Int, ring: consuming Ring, receiveBuffers: consuming ProvidedBufferRing, wakeFD: CInt, configuration: Configuration) {
        self.index = index
        self.capabilities = ring.capabilities
        self.ringFD = ring.descriptor
        self.acceptsRingMessages = ring.capabilities.supports(IORING_OP_MSG_RING)
        self.ring = ring
        self.receiveBuffers = receiveBuffers
        self.wakeFD = wakeFD
        self.configuration = configuration
        self.threadID = pthread_self()
        self.completionBatch = .allocate(capacity: configuration.turnBudget)
        self.completionBatch.initialize(repeating: nil)
    }

    deinit {
        completionBatch.deallocate()
        wakeBuffer.deallocate()
        Glibc.close(wakeFD)
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
        let configuration: Configuration
        var result: Result<EventLoop, TorusError>?
        private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

        init(index: Int, configuration: Configuration) {
            self.index = index
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

    /// Starts a thread, creates a ring and a loop on it, and returns the loop once it runs.
    static func start(index: Int, configuration: Configuration) throws(TorusError) -> (EventLoop, pthread_t) {
        let startup = Startup(index: index, configuration: configuration)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, eventLoopThreadMain, Unmanaged.passRetained(startup).toOpaque())
        guard rc == 0 else {
            throw TorusError(.system, operation: .ringSetup, errno: rc, detail: "pthread_create failed")
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
        do {
            let ring = try Ring(entries: startup.configuration.submissionQueueEntries)
            let wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            guard wakeFD >= 0 else {
                throw TorusError(.system, operation: .ringSetup, errno: errno, detail: "eventfd failed")
            }
            let configuration = startup.configuration
            let receiveBuffers = try ProvidedBufferRing(
                registeringWith: ring, group: 0,
                count: configuration.receiveBufferCount, bufferSize: configuration.receiveBufferSize)
            loop = EventLoop(index: startup.index, ring: ring, receiveBuffers: receiveBuffers, wakeFD: wakeFD, configuration: configuration)
        } catch {
            startup.result = .failure(error as! TorusError)
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
        armWake()
        while true {
            if wakePending.load(ordering: .acquiring) { drainRemoteWork() }
            runReadyJobs()
            if isStopping, table.liveCount == 0, readyJobs.isEmpty, markStoppedIfIdle() { break }
            let rc = ring.submit(waitingFor: readyJobs.isEmpty ? 1 : 0)
            // EBUSY/EAGAIN: the completion queue is backed up; reaping below makes room.
            precondition(rc >= 0 || rc == -EBUSY || rc == -EAGAIN || rc == -ETIME,
                         "io_uring_enter failed: \(TorusError.describe(errno: -rc))")
            resetArenaIfSubmitted()
            reapCompletions()
        }
        ring.close()
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

    private func reapCompletions() {
        _ = ring.reapCompletions(into: completionBatch) { completion, userData in
            dispatch(completion, userData: userData)
        }
    }

    private func dispatch(_ completion: Completion, userData: UInt64) {
        if userData & InternalTag.bit != 0 {
            // A wake-up only ends the wait; the loop then looks at `wakePending`.
            if userData == InternalTag.wake, !isStopping { armWake() }
            return
        }
        let id = OperationID(rawValue: userData)
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

    /// Keeps one eventfd read in the ring; a write to the eventfd from any thread completes
    /// it and ends the loop's wait.
    private func armWake() {
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_read(sqe, wakeFD, wakeBuffer, 8, 0)
        sqe.pointee.user_data = InternalTag.wake
    }

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

    /// Ends the loop's wait. From another loop's thread, a message from that loop's ring does
    /// it with no system call of its own: it goes in with the sender's next submission.
    /// From any other thread, a write to the eventfd does.
    private func wake() {
        if acceptsRingMessages, let sender = EventLoop.current, sender !== self, sender.isRunningLoop, !sender.isStopping {
            sender.postWake(toRing: ringFD)
        } else {
            _ = eventfd_write(wakeFD, 1)
        }
    }

    /// Prepares a message to the ring `fd` (another loop's) that completes its wait. Runs on
    /// this loop's thread.
    private func postWake(toRing fd: CInt) {
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_msg_ring(sqe, fd, 0, InternalTag.message, 0)
        sqe.pointee.user_data = InternalTag.ignored
        torus_sqe_skip_success(sqe)
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

    /// Makes sure `submissions` entries and `arenaBytes` of arena fit in this turn, submitting
    /// what is prepared so far if they do not.
    private func ensureRoom(submissions: Int, arenaBytes: Int) {
        guard ring.spaceLeft < submissions || !arena.canFit(arenaBytes) else { return }
        let rc = ring.submit(waitingFor: 0)
        precondition(rc >= 0 || rc == -EBUSY || rc == -EAGAIN, "io_uring_enter failed: \(TorusError.describe(errno: -rc))")
        resetArenaIfSubmitted()
        precondition(ring.spaceLeft >= submissions && arena.canFit(arenaBytes),
                     "the kernel consumed no submissions (completion queue backed up)")
    }

    /// Reuses the arena once the kernel has consumed every prepared request (and so copied
    /// what they point to). Requests left unconsumed (EBUSY) still point into it.
    private func resetArenaIfSubmitted() {
        if ring.pendingSubmissions == 0 { arena.reset() }
    }

    /// Prepares the request for `id` (and a linked timeout when `timeout` is set). It is
    /// submitted with the rest of this turn's batch.
    private func prepareRequest(
        _ id: OperationID,
        timeout: Duration?,
        arenaBytes: Int,
        _ prepare: (UnsafeMutablePointer<io_uring_sqe>, inout SubmissionArena) -> Void
    ) {
        assertInEventLoop()
        let timespecBytes = timeout == nil ? 0 : MemoryLayout<__kernel_timespec>.stride + 16
        ensureRoom(submissions: timeout == nil ? 1 : 2, arenaBytes: arenaBytes + timespecBytes + 16)
        let sqe = ring.nextSubmission()
        prepare(sqe, &arena)
        sqe.pointee.user_data = id.rawValue
        if let timeout {
            torus_sqe_link_next(sqe)
            let timespec = arena.allocate(__kernel_timespec.self)
            timespec.pointee = __kernel_timespec(timeout)
            let linked = ring.nextSubmission()
            io_uring_prep_link_timeout(linked, timespec, 0)
            linked.pointee.user_data = InternalTag.ignored
        }
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
        timeout: Duration? = nil,
        arenaBytes: Int = 0,
        cancellable: Bool = true,
        isolation: isolated (any Actor)? = #isolation,
        _ prepare: (UnsafeMutablePointer<io_uring_sqe>, inout SubmissionArena) -> Void
    ) async -> Completion {
        assertInEventLoop()
        if isStopping { return .loopShutDown }
        guard cancellable else {
            let id = table.reserve()
            return await onThisLoop(isolation: isolation) {
                await withUnsafeContinuation(isolation: isolation) { continuation in
                    prepareRequest(id, timeout: timeout, arenaBytes: arenaBytes, prepare)
                    table.setState(.awaiting(continuation, inKernel: true, cancelRequested: false), for: id)
                }
            }
        }
        if Task.isCancelled { return .cancelled }
        let id = table.reserve()
        return await awaitCompletion(of: id, inKernel: true, isolation: isolation) {
            prepareRequest(id, timeout: timeout, arenaBytes: arenaBytes, prepare)
        }
    }

    /// Submits a request whose completions go to `handler` on the loop (a multishot request or
    /// an internal timer). Returns nil when the loop is stopping.
    func submit(
        handledBy handler: any CompletionHandler,
        timeout: Duration? = nil,
        arenaBytes: Int = 0,
        _ prepare: (UnsafeMutablePointer<io_uring_sqe>, inout SubmissionArena) -> Void
    ) -> OperationID? {
        assertInEventLoop()
        if isStopping { return nil }
        let id = table.reserve()
        prepareRequest(id, timeout: timeout, arenaBytes: arenaBytes, prepare)
        table.setState(.handler(handler, cancelRequested: false), for: id)
        return id
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
            submitCancelRequest(for: id)
        case .handler(let handler, cancelRequested: false):
            table.setState(.handler(handler, cancelRequested: true), for: id)
            submitCancelRequest(for: id)
        case .free, .reserved, .awaiting, .handler:
            break
        }
    }

    private func submitCancelRequest(for id: OperationID) {
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_cancel64(sqe, id.rawValue, 0)
        sqe.pointee.user_data = InternalTag.ignored
    }

    /// Closes `fd` through the ring without waiting for the result. Callable from any thread
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
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_close(sqe, fd)
        sqe.pointee.user_data = InternalTag.ignored
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

extension __kernel_timespec {
    /// A relative timespec for `duration`; negative durations become zero.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            self.init(tv_sec: 0, tv_nsec: 0)
        } else {
            self.init(tv_sec: seconds, tv_nsec: attoseconds / 1_000_000_000)
        }
    }
}
