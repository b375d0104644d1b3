import CoreMetrics
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The loop-side half of a ``Listener``: owns the listening descriptor, keeps one multishot
/// accept armed while there is room, and queues accepted descriptors for the tasks
/// waiting in ``Listener/accept()``.
///
/// It lives on the listener's loop: the listener's methods and the loop's completion handling
/// are its only callers, and both run on that thread.
final class ListenerCore: CompletionHandler, @unchecked Sendable {
    // @unchecked Sendable: every method runs on `loop`'s thread (asserted where it matters); a
    // dropped listener hands the core to `loop.execute`, which runs `abandon()` there.

    let logger: Logger
    private let fd: CInt
    private let loop: EventLoop
    private let unixPath: String?
    private let capacity: Int
    private let exhaustionPause: Duration

    private var accepted = FIFO<CInt>(initialCapacity: 16)
    private var waiters = FIFO<OperationID>(initialCapacity: 4)
    /// The multishot accept in flight, until its final completion.
    private var acceptRequest: OperationID?
    /// The pause after running out of descriptors, while it lasts.
    private var pauseTimer: OperationID?
    private var failure: TorusError?
    private var isClosed = false
    /// The task in `close()` waiting for the last completion.
    private var closeWaiter: OperationID?
    /// Set while the listener's owner wants no more connections accepted (a server at its
    /// connection limit): the kernel's backlog holds new ones meanwhile.
    private var isHeld = false
    /// Counts accept pauses for want of descriptors or memory (or after
    /// ``failuresBeforePause`` per-connection errors in a row).
    private let pauses: Counter
    /// Per-connection errors since the last accepted connection.
    private var failuresInARow = 0
    /// What is logged about those pauses: a few lines per episode, not one per pause.
    private var pauseLog: AcceptPauseLog

    /// The result handed to waiters when the listener closes.
    private static let closedResult = Completion(result: -EBADF)

    /// Per-connection errors (`ECONNABORTED`, `EPERM`, …) in a row, with no connection
    /// accepted in between, after which accepting pauses as if it had run out of descriptors.
    /// Each such error normally takes one connection off the backlog and the next accept is
    /// made at once; one that repeats without end (accept forbidden by a filter, say) would
    /// otherwise make the listener spin, a failed accept every loop turn.
    static let failuresBeforePause = 64

    init(fd: CInt, loop: EventLoop, unixPath: String?, options: Listener.Options, logger: Logger, pauses: Counter) {
        self.pauses = pauses
        self.fd = fd
        self.loop = loop
        self.unixPath = unixPath
        self.capacity = max(1, options.acceptQueueCapacity)
        self.exhaustionPause = options.resourceExhaustionPause
        self.pauseLog = AcceptPauseLog(pause: options.resourceExhaustionPause)
        self.logger = logger
    }

    /// The next accepted descriptor, or nil once closed.
    func next(isolation: isolated (any Actor)? = #isolation) async throws -> CInt? {
        loop.assertInEventLoop()
        if let fd = accepted.popFirst() {
            armIfRoom()
            return fd
        }
        if isClosed { return nil }
        if let failure { throw failure }
        armIfRoom()
        let completion = await loop.suspend { id in
            // A descriptor may have arrived since the queue was looked at.
            if let fd = accepted.popFirst() {
                loop.resume(id, with: Completion(result: fd))
            } else if isClosed {
                loop.resume(id, with: Self.closedResult)
            } else {
                waiters.append(id)
            }
        }
        switch completion.result {
        case 0...:
            armIfRoom()
            return completion.result
        case Self.closedResult.result:
            return nil
        case -ECANCELED:
            throw CancellationError()
        default:
            throw TorusError(errno: -completion.result, operation: .accept, address: nil)
        }
    }

    /// Stops accepting, closes queued descriptors and the socket, ends every waiter.
    func close(isolation: isolated (any Actor)? = #isolation) async {
        loop.assertInEventLoop()
        guard !isClosed else { return }
        stopAccepting()
        if acceptRequest != nil || pauseTimer != nil {
            // Wait for the kernel's last word, so no descriptor it accepts arrives after close
            // returns. (A cancelled close skips the wait; late descriptors are closed anyway.)
            _ = await loop.suspend { id in
                // It may have come while this task was on its way here.
                if acceptRequest == nil, pauseTimer == nil {
                    loop.resume(id, with: Completion(result: 0))
                } else {
                    closeWaiter = id
                }
            }
        }
        _ = await loop.close(fd)
        if let unixPath { unlink(unixPath) }
    }

    /// Closes everything without waiting: for a listener dropped without `close()`.
    func abandon() {
        guard !isClosed else { return }
        stopAccepting()
        // In flight, the accept holds its own reference to the socket; the cancel submitted
        // above goes to the kernel before this close.
        loop.closeDetached(fd)
        if let unixPath { unlink(unixPath) }
    }

    private func stopAccepting() {
        isClosed = true
        if let acceptRequest { loop.requestCancel(acceptRequest) }
        if let pauseTimer { loop.requestCancel(pauseTimer) }
        while let fd = accepted.popFirst() { loop.closeDetached(fd) }
        while let waiter = waiters.popFirst() { loop.resume(waiter, with: Self.closedResult) }
    }

    /// Stops accepting until ``resume()``; descriptors already accepted are still handed out.
    func hold() {
        loop.assertInEventLoop()
        isHeld = true
        if let acceptRequest { loop.requestCancel(acceptRequest) }
    }

    /// Accepts again after ``hold()``.
    func resume() {
        loop.assertInEventLoop()
        isHeld = false
        armIfRoom()
    }

    private func armIfRoom() {
        guard !isClosed, !isHeld, failure == nil, acceptRequest == nil, pauseTimer == nil, accepted.count < capacity else { return }
        acceptRequest = loop.startAccepting(fd, handledBy: self)
    }

    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {
        if operation == pauseTimer {
            // Expired, or cancelled by close(); the first accepted connection ends the episode
            // in the log.
            pauseTimer = nil
            armIfRoom()
        } else {
            handleAccept(completion)
        }
        if isClosed, acceptRequest == nil, pauseTimer == nil, let closeWaiter {
            self.closeWaiter = nil
            loop.resume(closeWaiter, with: Completion(result: 0))
        }
    }

    private func handleAccept(_ completion: Completion) {
        if !completion.hasMore { acceptRequest = nil }
        if completion.result >= 0 {
            deliver(completion.result)
        } else {
            handleAcceptError(-completion.result)
        }
        if !completion.hasMore {
            armIfRoom()
        } else if accepted.count >= capacity, let acceptRequest {
            // Full: stop accepting until a waiter takes one; the backlog holds the rest.
            loop.requestCancel(acceptRequest)
        }
    }

    private func deliver(_ newFD: CInt) {
        if isClosed {
            loop.closeDetached(newFD)
            return
        }
        failuresInARow = 0
        if pauseLog.isPaused, let line = pauseLog.accepted(at: .now) { log(line) }
        while let waiter = waiters.popFirst() {
            if loop.resume(waiter, with: Completion(result: newFD)) { return }
        }
        accepted.append(newFD)
    }

    private func handleAcceptError(_ errno: Int32) {
        switch errno {
        case ECANCELED, ESHUTDOWN:
            // We asked for it (queue full or closing), or the loop is stopping.
            break
        case EMFILE, ENFILE, ENOMEM, ENOBUFS:
            pause(for: errno)
        case ECONNABORTED, EINTR, EAGAIN, EPROTO, EPERM, ENETDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ETIMEDOUT:
            // About one connection, not the listener: keep accepting, unless it keeps coming.
            failuresInARow += 1
            if failuresInARow >= Self.failuresBeforePause {
                pause(for: errno, inARow: failuresInARow)
            } else {
                logger.debug("accept: \(TorusError.describe(errno: errno))")
            }
        default:
            let error = TorusError(errno: errno, operation: .accept)
            logger.error("listener failed: \(error)")
            failure = error
            while let waiter = waiters.popFirst() { loop.resume(waiter, with: Completion(result: -errno)) }
        }
    }

    /// Pauses accepting for `exhaustionPause` after `errno`, the last of `count` failures in a
    /// row.
    private func pause(for errno: Int32, inARow count: Int = 1) {
        failuresInARow = 0
        pauses.increment()
        if let line = pauseLog.paused(errno, inARow: count, at: .now) { log(line) }
        if let acceptRequest { loop.requestCancel(acceptRequest) }
        if !isClosed { pauseTimer = loop.startTimer(exhaustionPause, handledBy: self) }
    }

    private func log(_ line: AcceptPauseLog.Line) {
        switch line.level {
        case .warning: logger.warning("\(line.message)")
        case .info: logger.info("\(line.message)")
        }
    }
}
