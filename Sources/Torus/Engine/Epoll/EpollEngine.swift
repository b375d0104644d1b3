import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The readiness engine, for where io_uring is forbidden: edge-triggered epoll, non-blocking
/// sockets, an eventfd for wake-ups, and a deadline heap whose earliest entry bounds the wait.
///
/// It keeps io_uring's contract, so the code above it cannot tell the engines apart: an
/// operation is attempted when it is prepared and again whenever its descriptor becomes ready,
/// and completes with the same results and flags (a multishot receive fills the loop's
/// receive buffers one completion at a time, flagged ``CompletionFlags/more``, and ends with
/// `-ENOBUFS` when they run out). Each descriptor is registered once, for both directions;
/// the engine remembers what it last found it ready for, so re-arming an operation needs no
/// system call. One `epoll_wait` serves every ready descriptor, each for at most
/// ``servingBudget`` completions before the others get their turn; a turn calls it at most
/// once, and a busy loop only every other turn (see ``runTurn(waiting:_:)``).
///
/// A receive on a TCP socket that gets fewer bytes than it had room for has taken everything
/// queued, so the descriptor is taken to be not readable until its next edge (as tokio does),
/// saving the attempt that would only return `EAGAIN`; see ``shortReadDrained(_:_:)`` for when
/// that does not hold. A stream that keeps filling the buffers it is offered gets up to
/// four per `recvmsg` (see ``adaptWidth(_:filled:short:)``), one completion each.
///
/// Created on the loop's thread and used only there, but for ``wake()``.
final class EpollEngine: IOEngine {
    let kind = EventLoop.Engine.epoll
    let socketFlags = Int32(SOCK_NONBLOCK.rawValue)

    /// Completions one descriptor gets per turn before the others are served.
    static let servingBudget = 16

    private struct Descriptor {
        /// Changes whenever the descriptor number is closed, so that an event for its former
        /// holder is not taken for the new one.
        var generation: UInt32 = 0
        var isRegistered = false
        var isReadable = false
        var isWritable = false
        /// Operations waiting to read or accept, and to write or connect, in arrival order.
        var readers: [OperationID] = []
        var writers: [OperationID] = []
        /// Queued to be served again next turn (its budget ran out while it was still ready).
        var isQueuedAgain = false
        /// The peer closed or reset (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`) or sent urgent data
        /// (`EPOLLPRI`): a short read no longer means that nothing is left to read. Kept until
        /// the descriptor is closed.
        var shortReadsMayLeaveBytes = false
        /// Whether it is a TCP socket, once a short read made it matter; nil until then.
        var isTCP: Bool?
        /// Buffers its next receive into the loop's buffers may fill (see ``adaptWidth``).
        var receiveWidth: UInt8 = 1
    }

    private struct Pending {
        let id: OperationID
        let operation: IOOperation
    }

    private let epollFD: CInt
    private let wakeFD: CInt
    // `@exclusivity(unchecked)`: touched on every operation on the loop thread only, and no
    // access overlaps another to the same property (see `EventLoop`'s state).
    @exclusivity(unchecked) private var buffers: ReceiveBufferPool
    @exclusivity(unchecked) private var descriptors: ContiguousArray<Descriptor> = []
    /// Operations in progress, by completion-table slot.
    @exclusivity(unchecked) private var pending: ContiguousArray<Pending?> = []
    @exclusivity(unchecked) private var deadlines = DeadlineHeap()
    /// Completions to deliver with the next turn, and the batch being delivered.
    @exclusivity(unchecked) private var completed: [(OperationID, Completion)] = []
    @exclusivity(unchecked) private var delivering: [(OperationID, Completion)] = []
    /// Descriptors to serve again next turn, and the ones being served.
    @exclusivity(unchecked) private var servedAgain: [CInt] = []
    @exclusivity(unchecked) private var serving: [CInt] = []
    /// The previous turn skipped `epoll_wait`: this one must call it (see ``runTurn(waiting:_:)``).
    private var skippedLastPoll = false
    private let events: UnsafeMutableBufferPointer<epoll_event>

    /// `epoll_event.data` of the wake-up eventfd; descriptors use `generation << 32 | fd`.
    private static let wakeTag = UInt64.max

    init(configuration: EventLoop.Configuration) throws(TorusError) {
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else {
            throw TorusError(.system, operation: .eventLoopSetup, errno: errno, detail: "epoll_create1 failed")
        }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            let error = errno
            Glibc.close(epollFD)
            throw TorusError(.system, operation: .eventLoopSetup, errno: error, detail: "eventfd failed")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeTag
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            let error = errno
            Glibc.close(wakeFD)
            Glibc.close(epollFD)
            throw TorusError(.system, operation: .eventLoopSetup, errno: error, detail: "epoll_ctl failed for the wake-up eventfd")
        }
        do {
            buffers = try ReceiveBufferPool(count: configuration.receiveBufferCount, bufferSize: configuration.receiveBufferSize)
        } catch {
            Glibc.close(wakeFD)
            Glibc.close(epollFD)
            throw error
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        events = .allocate(capacity: max(16, min(configuration.turnBudget, 1024)))
        completed.reserveCapacity(256)
        delivering.reserveCapacity(256)
    }

    deinit {
        events.deallocate()
        close()
        // Only now: another thread may still wake the loop after it stopped, and a closed
        // number could already name someone else's descriptor.
        Glibc.close(wakeFD)
    }

    private var isClosed = false

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(epollFD)
    }

    // MARK: Operations

    func prepare(_ operation: IOOperation, for id: OperationID, timeout: Duration?) {
        switch operation {
        case .nop:
            complete(id, Completion(result: 0))
        case .timer(let duration):
            remember(Pending(id: id, operation: operation))
            deadlines.insert(id.slot, deadline: Self.deadline(after: duration))
        case .close(let fd):
            complete(id, Completion(result: closeDescriptor(fd)))
        case .cancelAll(let fd):
            cancelAll(on: fd)
            complete(id, Completion(result: 0))
        case .connect(let fd, _):
            if let result = operation.startConnecting() {
                complete(id, result)
                return
            }
            guard register(fd) else { return complete(id, Completion(result: -errno)) }
            // Not writable until the connection is made (or refused): the kernel says so.
            descriptors[Int(fd)].isWritable = false
            wait(Pending(id: id, operation: operation), on: fd, for: .writable, timeout: timeout)
        case .accept(let fd), .receive(let fd, _), .receiveIntoBuffers(let fd), .receiveMessages(let fd, _):
            guard register(fd) else { return complete(id, Completion(result: -errno)) }
            wait(Pending(id: id, operation: operation), on: fd, for: .readable, timeout: timeout)
            serve(fd, .readable)
        case .send(let fd, _), .sendVectors(let fd, _), .sendTo(let fd, _, _):
            guard register(fd) else { return complete(id, Completion(result: -errno)) }
            wait(Pending(id: id, operation: operation), on: fd, for: .writable, timeout: timeout)
            serve(fd, .writable)
        }
    }

    func prepareDetached(_ operation: IOOperation) {
        switch operation {
        case .close(let fd): _ = closeDescriptor(fd)
        case .cancelAll(let fd): cancelAll(on: fd)
        default: preconditionFailure("\(operation) cannot be detached")
        }
    }

    func cancel(_ id: OperationID) {
        guard take(id) != nil else { return }   // completed already: its completion is queued
        complete(id, Completion(result: -ECANCELED))
    }

    private func remember(_ operation: Pending) {
        let slot = operation.id.slot
        if slot >= pending.count { pending.append(contentsOf: repeatElement(nil, count: slot + 1 - pending.count)) }
        pending[slot] = operation
    }

    private func wait(_ operation: Pending, on fd: CInt, for readiness: Readiness, timeout: Duration?) {
        remember(operation)
        switch readiness {
        case .readable: descriptors[Int(fd)].readers.append(operation.id)
        case .writable: descriptors[Int(fd)].writers.append(operation.id)
        }
        if let timeout { deadlines.insert(operation.id.slot, deadline: Self.deadline(after: timeout)) }
    }

    /// Forgets operation `id` (its deadline and its place in its descriptor's queue); returns
    /// it if it was still pending.
    private func take(_ id: OperationID) -> IOOperation? {
        guard id.slot < pending.count, let operation = pending[id.slot], operation.id == id else { return nil }
        pending[id.slot] = nil
        deadlines.remove(id.slot)
        if let (fd, readiness) = operation.operation.readiness, Int(fd) < descriptors.count {
            switch readiness {
            case .readable: descriptors[Int(fd)].readers.removeAll { $0 == id }
            case .writable: descriptors[Int(fd)].writers.removeAll { $0 == id }
            }
        }
        return operation.operation
    }

    private func complete(_ id: OperationID, _ completion: Completion) {
        completed.append((id, completion))
    }

    /// Ends every operation waiting on `fd` with `-ECANCELED`.
    private func cancelAll(on fd: CInt) {
        let index = Int(fd)
        guard index < descriptors.count else { return }
        // `cancel` takes each operation out of its queue; no copy of the queues is made (a
        // close per connection would otherwise allocate one).
        while let id = descriptors[index].readers.first {
            if take(id) != nil { complete(id, Completion(result: -ECANCELED)) } else { descriptors[index].readers.removeFirst() }
        }
        while let id = descriptors[index].writers.first {
            if take(id) != nil { complete(id, Completion(result: -ECANCELED)) } else { descriptors[index].writers.removeFirst() }
        }
    }

    /// Closes `fd` after ending what still waits on it; the number may be reused at once, so
    /// nothing about it is kept. Returns 0 or `-errno`.
    private func closeDescriptor(_ fd: CInt) -> Int32 {
        if Int(fd) < descriptors.count {
            cancelAll(on: fd)
            if descriptors[Int(fd)].isRegistered { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil) }
            let generation = descriptors[Int(fd)].generation &+ 1
            descriptors[Int(fd)] = Descriptor(generation: generation)
        }
        return Glibc.close(fd) == 0 ? 0 : -errno
    }

    /// Registers `fd` for both directions, edge-triggered, the first time an operation waits
    /// on it; until the kernel says otherwise, it is taken to be ready (an attempt finds out).
    /// Returns false, with `errno` set, when epoll refuses the descriptor.
    private func register(_ fd: CInt) -> Bool {
        let index = Int(fd)
        if index >= descriptors.count {
            descriptors.append(contentsOf: repeatElement(Descriptor(), count: max(index + 1 - descriptors.count, descriptors.count)))
        }
        if descriptors[index].isRegistered { return true }
        var event = epoll_event()
        // EPOLLPRI only so that urgent data is noticed (see `shortReadDrained`).
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLPRI.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64(descriptors[index].generation) << 32 | UInt64(UInt32(bitPattern: fd))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        descriptors[index].isRegistered = true
        descriptors[index].isReadable = true
        descriptors[index].isWritable = true
        return true
    }

    // MARK: Serving ready descriptors

    /// Attempts the operations waiting on `fd` for `readiness`, oldest first, while it stays
    /// ready, for at most ``servingBudget`` completions.
    private func serve(_ fd: CInt, _ readiness: Readiness) {
        let index = Int(fd)
        var budget = Self.servingBudget
        while isReady(index, readiness), let id = firstWaiting(index, readiness) {
            guard let operation = pending[id.slot]?.operation else { preconditionFailure("\(id) waits but is not pending") }
            switch operation.attempt(buffers: &buffers, receiveWidth: Int(descriptors[index].receiveWidth)) {
            case .wouldBlock:
                setReady(index, readiness, false)
                return
            case .receivedIntoBuffers(let batch):
                var left = batch.bytes
                for position in 0..<batch.filled {
                    let count = min(left, buffers.bufferSize)
                    left -= count
                    complete(id, Completion(result: Int32(count), flags: [.more, .buffer], bufferIndex: batch.ids[position]))
                }
                adaptWidth(index, filled: batch.filled, short: batch.isShort)
                if batch.isShort, shortReadDrained(index, fd) {
                    setReady(index, readiness, false)
                    return
                }
                budget -= batch.filled - 1
            case .completed(let completion, let ends, let shortRead):
                if ends { _ = take(id) }
                complete(id, completion)
                if case .receiveIntoBuffers = operation, completion.flags.contains(.buffer) {
                    adaptWidth(index, filled: 1, short: shortRead)
                }
                if shortRead, shortReadDrained(index, fd) {
                    setReady(index, readiness, false)
                    return
                }
            }
            budget -= 1
            if budget <= 0 {
                if isReady(index, readiness), firstWaiting(index, readiness) != nil, !descriptors[index].isQueuedAgain {
                    descriptors[index].isQueuedAgain = true
                    servedAgain.append(fd)
                }
                return
            }
        }
    }

    /// Sets how many buffers the next receive on descriptor `index` offers: twice as many
    /// (up to ``ReceiveBatch/capacity``) after a receive that filled every buffer it was
    /// offered, as many as it filled after one that came short. A socket that gets a message
    /// at a time keeps receiving into one buffer with `recv`; one that streams takes up to
    /// 64 KiB per system call, as SwiftNIO's adaptive allocator does.
    @inline(__always)
    private func adaptWidth(_ index: Int, filled: Int, short: Bool) {
        let width = Int(descriptors[index].receiveWidth)
        descriptors[index].receiveWidth = UInt8(short ? max(1, filled) : min(width * 2, ReceiveBatch.capacity))
    }

    /// Whether a short read from `fd` took every byte queued, so that the next attempt could
    /// only fail with `EAGAIN` and the descriptor can wait for its next edge instead.
    ///
    /// Edge-triggered epoll reports a new event for every wake-up after the last report, so
    /// bytes arriving after the read are never missed. What is missed is what the kernel
    /// reported *before* the read and the read did not consume:
    /// - the end of the stream (or a reset): a FIN that arrived with the last bytes is part of
    ///   the same edge, and the read returns the bytes, short, leaving the 0 (or the error)
    ///   for the next read, for which no edge will ever come. So once `EPOLLRDHUP`,
    ///   `EPOLLHUP` or `EPOLLERR` was seen, short reads are not trusted.
    /// - urgent data: a TCP read stops short at the urgent mark, with bytes after it. Once
    ///   `EPOLLPRI` was seen, the same.
    /// - anything but TCP: a datagram socket returns one datagram per read, and a Unix stream
    ///   stops a read short at a message that carries descriptors or at its out-of-band mark.
    ///   So short reads count only on TCP sockets (one `getsockopt` per descriptor, at its
    ///   first short read).
    /// `IPPROTO_TCP`, spelled out: naming it in this file (which imports CURing) made the
    /// release build, whole-module, lose it for the files in Sources/Torus/Sockets that name
    /// it too.
    private static let tcpProtocol: CInt = 6

    private func shortReadDrained(_ index: Int, _ fd: CInt) -> Bool {
        if descriptors[index].shortReadsMayLeaveBytes { return false }
        if let isTCP = descriptors[index].isTCP { return isTCP }
        var proto: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        let isTCP = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &length) == 0 && proto == Self.tcpProtocol
        descriptors[index].isTCP = isTCP
        return isTCP
    }

    @inline(__always)
    private func isReady(_ index: Int, _ readiness: Readiness) -> Bool {
        readiness == .readable ? descriptors[index].isReadable : descriptors[index].isWritable
    }

    @inline(__always)
    private func setReady(_ index: Int, _ readiness: Readiness, _ ready: Bool) {
        if readiness == .readable { descriptors[index].isReadable = ready } else { descriptors[index].isWritable = ready }
    }

    @inline(__always)
    private func firstWaiting(_ index: Int, _ readiness: Readiness) -> OperationID? {
        readiness == .readable ? descriptors[index].readers.first : descriptors[index].writers.first
    }

    // MARK: The turn

    /// One turn. When the loop has work that needs no news from the kernel (jobs ready,
    /// completions queued, descriptors to serve again), the turn would only poll
    /// (`epoll_wait` with a zero timeout); every other such turn skips that call, so a chain
    /// of short turns (a task hopping between actors, a send that completed at once) costs
    /// half the polls, and a loop that always has work still polls at least every second
    /// turn, so ready descriptors wait at most one turn longer. A turn that may sleep always
    /// calls `epoll_wait`.
    func runTurn(waiting: Bool, _ deliver: (OperationID, Completion) -> Void) {
        let hasWork = !waiting || !completed.isEmpty || !servedAgain.isEmpty
        if hasWork, !skippedLastPoll {
            skippedLastPoll = true
        } else {
            skippedLastPoll = false
            let timeout: Int32
            if hasWork {
                timeout = 0
            } else if let earliest = deadlines.earliest {
                let now = Self.now()
                // Rounded up to whole milliseconds, so a deadline is never served early.
                timeout = earliest <= now ? 0 : Int32(clamping: (earliest - now + 999_999) / 1_000_000)
            } else {
                timeout = -1
            }
            let count = epoll_wait(epollFD, events.baseAddress, Int32(events.count), timeout)
            precondition(count >= 0 || errno == EINTR, "epoll_wait failed: \(TorusError.describe(errno: errno))")
            for event in events.prefix(Int(max(0, count))) { handle(event) }
        }

        swap(&servedAgain, &serving)
        for fd in serving {
            descriptors[Int(fd)].isQueuedAgain = false
            serve(fd, .readable)
            serve(fd, .writable)
        }
        serving.removeAll(keepingCapacity: true)

        if !deadlines.isEmpty { expireDeadlines(now: Self.now()) }

        swap(&completed, &delivering)
        for (id, completion) in delivering { deliver(id, completion) }
        delivering.removeAll(keepingCapacity: true)
    }

    private func handle(_ event: epoll_event) {
        let tag = event.data.u64
        if tag == Self.wakeTag {
            var value: UInt64 = 0
            _ = eventfd_read(wakeFD, &value)
            return
        }
        let fd = CInt(bitPattern: UInt32(truncatingIfNeeded: tag))
        let index = Int(fd)
        guard index < descriptors.count, descriptors[index].isRegistered,
              descriptors[index].generation == UInt32(truncatingIfNeeded: tag >> 32) else { return }
        let flags = event.events
        // An error or hang-up makes both directions "ready": the attempt reports it.
        let failed = flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
        if flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue | EPOLLPRI.rawValue) != 0 {
            descriptors[index].shortReadsMayLeaveBytes = true
        }
        if failed || flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLPRI.rawValue) != 0 {
            descriptors[index].isReadable = true
            serve(fd, .readable)
        }
        if failed || flags & EPOLLOUT.rawValue != 0 {
            descriptors[index].isWritable = true
            serve(fd, .writable)
        }
    }

    /// Ends the operations whose deadline has passed: a timer completes with `-ETIME`, an
    /// operation with a timeout is cancelled.
    private func expireDeadlines(now: UInt64) {
        while let slot = deadlines.popExpired(now: now) {
            guard let expired = pending[slot] else { continue }
            if case .timer = expired.operation {
                pending[slot] = nil
                complete(expired.id, Completion(result: -ETIME))
            } else {
                cancel(expired.id)
            }
        }
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private static func deadline(after duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return now() }
        let nanoseconds = UInt64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow else { return .max }
        return now().addingReportingOverflow(nanoseconds.partialValue &+ UInt64(attoseconds / 1_000_000_000)).partialValue
    }

    // MARK: Wake-ups

    func wake() {
        _ = eventfd_write(wakeFD, 1)
    }

    func postWake(to target: any IOEngine) -> Bool { false }

    // MARK: Receive buffers

    var receiveBufferSize: Int { buffers.bufferSize }

    func receiveBufferAddress(_ id: UInt16) -> UnsafeMutableRawPointer { buffers.address(of: id) }

    func recycleReceiveBuffer(_ id: UInt16) { buffers.recycle(id) }
}
