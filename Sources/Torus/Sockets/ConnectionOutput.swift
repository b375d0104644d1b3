#if canImport(Glibc)
import Glibc
#endif

/// The sending half of a ``Connection``: who may write now, the writers waiting for their
/// turn, and the outbox of received buffers queued by ``Connection/send(_:)-(ReceivedBytes)`` with the one
/// `sendmsg` in flight that carries them.
///
/// Writes go out one after another, in the order they were made. A waiting write
/// (`Connection.write(_:timeout:)`) holds the output while it
/// runs. The outbox holds it while it has buffers left to send, and passes it on once empty.
/// A send joins the outbox at once when the output is free, or when the outbox holds it with
/// room left and nobody waiting behind it; otherwise it waits for its turn like a write.
/// While one `sendmsg` is in flight, buffers queued meanwhile wait and then go out together,
/// up to ``outboxCapacity`` per `sendmsg`.
final class ConnectionOutput: CompletionHandler, @unchecked Sendable {
    // @unchecked Sendable: touched on the loop's thread only, by the connection actor (whose
    // executor is the loop) and by completions.

    /// Receive buffers the outbox holds at most (so that one connection's slow peer cannot
    /// keep many of its loop's receive buffers), and buffers sent at most in one `sendmsg`.
    /// Owned bytes (`CopiedBytes`) are bounded by ``highWaterMark`` alone: a broadcast of
    /// many small messages must not wait after sixteen of them.
    static let outboxCapacity = 16

    private let fd: CInt
    private let loop: EventLoop
    // `@exclusivity(unchecked)`: see `EventLoop`'s loop-confined state.
    /// Whether someone holds the output: a waiting write, or the outbox.
    @exclusivity(unchecked) private(set) var isWriting = false
    @exclusivity(unchecked) private var isOutboxWriting = false
    @exclusivity(unchecked) private var waitingWriters = FIFO<OperationID>(initialCapacity: 2)
    @exclusivity(unchecked) private var outbox = FIFO<LentBytes>(initialCapacity: 4)
    /// How many of the outbox's buffers are receive buffers rather than owned bytes.
    @exclusivity(unchecked) private var queuedReceiveBuffers = 0
    /// Bytes of the outbox's oldest buffer already sent.
    @exclusivity(unchecked) private var sentOfFirst = 0
    @exclusivity(unchecked) private var request: OperationID?
    @exclusivity(unchecked) private var drainWaiters = FIFO<OperationID>(initialCapacity: 1)
    /// The errno an outbox send failed with; the connection reports it to the next send or
    /// flush.
    @exclusivity(unchecked) private(set) var failure: Int32?
    /// Set when the descriptor is about to close: nothing more may be sent on its number,
    /// which the process may reuse at once.
    @exclusivity(unchecked) private var isAbandoned = false
    /// Bytes in the outbox not sent yet.
    @exclusivity(unchecked) private(set) var queuedBytes = 0
    /// Past this many queued bytes, a send waits until the outbox has drained.
    @exclusivity(unchecked) var highWaterMark = ConnectionOptions.defaultSendQueueHighWaterMark
    /// Bytes sent from the outbox so far.
    @exclusivity(unchecked) private(set) var bytesSent: UInt64 = 0
    /// The longest one outbox `sendmsg` may wait for room in the socket; nil for no limit.
    /// When it expires, the send fails with `ETIMEDOUT` (reported to the next send or flush).
    @exclusivity(unchecked) var sendTimeout: Duration?
    /// The `sendmsg` vectors, allocated by the first queued send (most connections that only
    /// `write` never need them).
    @exclusivity(unchecked) private var vectorStorage: UnsafeMutablePointer<iovec>?

    init(fd: CInt, loop: EventLoop) {
        self.fd = fd
        self.loop = loop
    }

    deinit {
        // A connection goes away only after its last send completed (the completion table
        // holds this object while one is in flight); anything still queued was never sent.
        while let lent = outbox.popFirst() { lent.giveBack() }
        vectorStorage?.deallocate()
    }

    // MARK: Write access

    /// Takes the output if nobody holds it.
    func tryBeginWriting() -> Bool {
        guard !isWriting else { return false }
        isWriting = true
        return true
    }

    /// Queues a writer (its suspended wait) for the output; ``passOn()`` resumes it.
    func waitForTurn(_ id: OperationID) {
        waitingWriters.append(id)
    }

    /// Gives the output to the oldest waiting writer, or frees it.
    func passOn() {
        while let next = waitingWriters.popFirst() {
            if loop.resume(next, with: Completion(result: 0)) { return }
        }
        isWriting = false
    }

    // MARK: Outbox

    /// Whether a send may join the outbox now, without waiting for its turn; `owned` for
    /// bytes of their own, which do not count against ``outboxCapacity``.
    func canJoinOutbox(owned: Bool) -> Bool {
        !isWriting || (isOutboxWriting && waitingWriters.isEmpty
            && (owned || queuedReceiveBuffers < Self.outboxCapacity) && queuedBytes < highWaterMark)
    }

    /// Whether the outbox has bytes not sent yet.
    var hasQueuedBytes: Bool { !outbox.isEmpty }

    /// Stops sending before the descriptor closes: what is queued is given back unsent once
    /// the send in flight (if any) completes.
    func abandon() {
        isAbandoned = true
        if request == nil, !outbox.isEmpty { fail(ECANCELED) }
    }

    /// Queues `bytes` for sending. The caller saw ``canJoinOutbox`` or holds the output.
    func enqueue(_ bytes: LentBytes) {
        guard !isAbandoned else {
            bytes.giveBack()
            return
        }
        isWriting = true
        isOutboxWriting = true
        outbox.append(bytes)
        if !bytes.isOwned { queuedReceiveBuffers += 1 }
        queuedBytes += bytes.count
        if request == nil { sendQueued() }
    }

    /// Registers a wait (from ``EventLoop/suspend(isolation:_:)``) that ends once the outbox is
    /// empty, sent or failed.
    func waitForDrain(_ id: OperationID) {
        drainWaiters.append(id)
    }

    private func sendQueued() {
        let vectors = vectorStorage ?? {
            let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: Self.outboxCapacity)
            vectorStorage = vectors
            return vectors
        }()
        let count = min(outbox.count, Self.outboxCapacity)
        for index in 0..<count {
            let lent = outbox[offset: index]
            let skip = index == 0 ? sentOfFirst : 0
            vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: lent.start + skip), iov_len: lent.count - skip)
        }
        request = loop.startSending(fd, vectors: UnsafeBufferPointer(start: vectors, count: count), timeout: sendTimeout, handledBy: self)
        if request == nil { fail(ESHUTDOWN) }
    }

    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {
        guard operation == request else { return }
        request = nil
        guard completion.result > 0 else {
            switch -completion.result {
            case 0: fail(ECONNRESET)
            // Cancelled by its linked timeout, unless we are closing.
            case ECANCELED where !isAbandoned && sendTimeout != nil: fail(ETIMEDOUT)
            default: fail(-completion.result)
            }
            return
        }
        var sent = Int(completion.result)
        bytesSent &+= UInt64(sent)
        queuedBytes -= sent
        while sent > 0, let first = outbox.first {
            let left = first.count - sentOfFirst
            if sent >= left {
                sent -= left
                sentOfFirst = 0
                if !first.isOwned { queuedReceiveBuffers -= 1 }
                outbox.popFirst()?.giveBack()
            } else {
                sentOfFirst += sent
                sent = 0
            }
        }
        if outbox.isEmpty {
            finishOutbox()
        } else if isAbandoned {
            fail(ECANCELED)
        } else {
            sendQueued()
        }
    }

    private func fail(_ errno: Int32) {
        if failure == nil { failure = errno }
        while let lent = outbox.popFirst() { lent.giveBack() }
        sentOfFirst = 0
        queuedBytes = 0
        queuedReceiveBuffers = 0
        finishOutbox()
    }

    private func finishOutbox() {
        isOutboxWriting = false
        while let waiter = drainWaiters.popFirst() {
            loop.resume(waiter, with: Completion(result: 0))
        }
        passOn()
    }
}
