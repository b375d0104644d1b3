import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The completion engine: one io_uring per loop, operations as submission queue entries
/// submitted once per turn together with the wait, completions reaped in batches, receives
/// into a registered provided-buffer ring.
///
/// Created on the loop's thread (with `SINGLE_ISSUER` the kernel ties the ring to its creator)
/// and used only there, but for ``wake()``.
final class IOUringEngine: IOEngine {
    let kind = EventLoop.Engine.ioUring
    let socketFlags: Int32 = 0
    /// What the kernel's io_uring offered this ring.
    let capabilities: IOUringCapabilities

    // `@exclusivity(unchecked)`: touched several times per operation on the loop thread only,
    // and no access overlaps another to the same property (see `EventLoop`'s state).
    @exclusivity(unchecked) private var ring: Ring
    @exclusivity(unchecked) private var arena = SubmissionArena(capacity: 64 * 1024)
    private let buffers: ProvidedBufferRing
    private let completionBatch: UnsafeMutableBufferPointer<UnsafeMutablePointer<io_uring_cqe>?>
    /// Other threads wake the loop by writing to this eventfd, whose read is always armed.
    private let wakeFD: CInt
    /// Where the wake-up read puts the eventfd's counter. Allocated once nothing in `init` can
    /// throw any more: a class whose init throws never runs its deinit.
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    /// Whether this ring can wake other loops with `IORING_OP_MSG_RING` (Linux 5.18+).
    private let acceptsRingMessages: Bool
    /// The ring's descriptor, which other loops' rings name to wake this one.
    private let ringFD: CInt

    /// `user_data` values for requests whose completions carry no news for anyone.
    private enum InternalTag {
        static let bit: UInt64 = 1 << 63
        /// The eventfd read that wakes the loop from other threads.
        static let wake: UInt64 = bit | 1
        /// Completions to drop: linked timeouts, cancel requests, detached requests.
        static let ignored: UInt64 = bit | 2
        /// A wake-up posted by another loop's ring (`IORING_OP_MSG_RING`).
        static let message: UInt64 = bit | 3
    }

    /// Sets up the ring, its receive buffers and the wake-up eventfd on the calling thread.
    init(configuration: EventLoop.Configuration) throws(TorusError) {
        let ring = try Ring(entries: configuration.ioUring.submissionQueueEntries)
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            throw TorusError(.system, operation: .eventLoopSetup, errno: errno, detail: "eventfd failed")
        }
        do {
            buffers = try ProvidedBufferRing(registeringWith: ring, group: 0,
                                             count: configuration.receiveBufferCount, bufferSize: configuration.receiveBufferSize)
        } catch {
            Glibc.close(wakeFD)
            throw error
        }
        capabilities = ring.capabilities
        acceptsRingMessages = ring.capabilities.supports(IORING_OP_MSG_RING)
        ringFD = ring.descriptor
        self.ring = ring
        self.wakeFD = wakeFD
        completionBatch = .allocate(capacity: configuration.turnBudget)
        completionBatch.initialize(repeating: nil)
        wakeBuffer = .allocate(capacity: 1)
        armWake()
    }

    deinit {
        ring.close()
        completionBatch.deallocate()
        wakeBuffer.deallocate()
        Glibc.close(wakeFD)
    }

    func close() { ring.close() }

    // MARK: Operations

    func prepare(_ operation: IOOperation, for id: OperationID, timeout: Duration?) {
        prepare(operation, userData: id.rawValue, timeout: timeout)
    }

    func prepareDetached(_ operation: IOOperation) {
        prepare(operation, userData: InternalTag.ignored, timeout: nil)
    }

    @inline(__always)
    private func prepare(_ operation: IOOperation, userData: UInt64, timeout: Duration?) {
        let timeoutBytes = timeout == nil ? 0 : SubmissionArena.footprint(of: __kernel_timespec.self)
        ensureRoom(submissions: timeout == nil ? 1 : 2, arenaBytes: operation.arenaBytes + timeoutBytes)
        let sqe = ring.nextSubmission()
        operation.prepare(sqe, arena: &arena, bufferGroup: buffers.group)
        sqe.pointee.user_data = userData
        if let timeout {
            torus_sqe_link_next(sqe)
            let timespec = arena.allocate(__kernel_timespec.self)
            timespec.pointee = __kernel_timespec(timeout)
            let linked = ring.nextSubmission()
            io_uring_prep_link_timeout(linked, timespec, 0)
            linked.pointee.user_data = InternalTag.ignored
        }
    }

    func cancel(_ id: OperationID) {
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_cancel64(sqe, id.rawValue, 0)
        sqe.pointee.user_data = InternalTag.ignored
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

    // MARK: The turn

    func runTurn(waiting: Bool, _ deliver: (OperationID, Completion) -> Void) {
        let rc = ring.submit(waitingFor: waiting ? 1 : 0)
        // EBUSY/EAGAIN: the completion queue is backed up; reaping below makes room.
        precondition(rc >= 0 || rc == -EBUSY || rc == -EAGAIN || rc == -ETIME,
                     "io_uring_enter failed: \(TorusError.describe(errno: -rc))")
        resetArenaIfSubmitted()
        _ = ring.reapCompletions(into: completionBatch) { cqe in
            if cqe.user_data & InternalTag.bit != 0 {
                // A wake-up only ends the wait; the loop then looks at its remote queue.
                if cqe.user_data == InternalTag.wake { armWake() }
                return
            }
            deliver(OperationID(rawValue: cqe.user_data), Completion(cqe))
        }
    }

    // MARK: Wake-ups

    /// Keeps one eventfd read in the ring; a write to the eventfd from any thread completes
    /// it and ends the loop's wait.
    private func armWake() {
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_read(sqe, wakeFD, wakeBuffer, 8, 0)
        sqe.pointee.user_data = InternalTag.wake
    }

    func wake() {
        _ = eventfd_write(wakeFD, 1)
    }

    /// Another loop's ring is woken by a message from this one, which goes in with this
    /// loop's next submission: no system call of its own.
    func postWake(to target: any IOEngine) -> Bool {
        guard acceptsRingMessages, let target = target as? IOUringEngine else { return false }
        ensureRoom(submissions: 1, arenaBytes: 0)
        let sqe = ring.nextSubmission()
        io_uring_prep_msg_ring(sqe, target.ringFD, 0, InternalTag.message, 0)
        sqe.pointee.user_data = InternalTag.ignored
        torus_sqe_skip_success(sqe)
        return true
    }

    // MARK: Receive buffers

    var receiveBufferSize: Int { buffers.bufferSize }

    func receiveBufferAddress(_ id: UInt16) -> UnsafeMutableRawPointer { buffers.address(of: id) }

    func recycleReceiveBuffer(_ id: UInt16) { buffers.recycle(id) }
}
