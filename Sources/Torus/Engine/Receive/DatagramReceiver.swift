import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The receiving half of a ``DatagramSocket``: one multishot message receive over the loop's
/// provided buffers, the datagrams it brought that the reader has not taken yet, and the
/// reader waiting for more.
///
/// The same buffer rules as ``ConnectionReceiver``: receiving starts with the first receive,
/// runs ahead of the reader by at most the loop's per-connection share of buffers (then it is
/// cancelled, and re-armed once the reader gives one back; datagrams the kernel delivered
/// meanwhile are copied out so their buffers go straight back), waits for a buffer to come
/// back on `ENOBUFS`, and is re-armed whenever the kernel ends it.
///
/// Unlike a stream, an error is not the end: a refused datagram (`ECONNREFUSED`, from an ICMP
/// port unreachable on a connected socket) is reported once, to the next call, and receiving
/// goes on after it.
final class DatagramReceiver: CompletionHandler, ReceiveBufferOwner, ReceiveBufferWaiter, @unchecked Sendable {
    // @unchecked Sendable: all state is touched on `loop`'s thread only. The one entry point
    // callable from elsewhere, `returnBuffer`, forwards to the loop when off it.

    /// A datagram waiting for the reader.
    private struct Entry {
        enum Storage {
            case lent(bufferID: UInt16)
            case copied(CopiedBytes)
        }
        var storage: Storage
        var message: MessageLayout.Message
    }

    private let fd: CInt
    private let loop: EventLoop
    private let share: Int
    private let layout = MessageLayout()
    private var entries = FIFO<Entry>(initialCapacity: 4)
    /// Buffers taken from the ring and not yet given back: queued in `entries` or lent out.
    private var held = 0
    private var request: OperationID?
    private var waiter: OperationID?
    private var timer: OperationID?
    private var isStarted = false
    private var isWaitingForBuffers = false
    private var isClosed = false
    /// An error for the next call (after the datagrams queued before it); cleared once taken.
    private var pendingError: Int32?

    init(fd: CInt, loop: EventLoop) {
        self.fd = fd
        self.loop = loop
        self.share = max(1, loop.configuration.receiveBuffersPerConnection)
    }

    // MARK: Reader side

    /// Whether a datagram is queued.
    var hasDatagram: Bool { !entries.isEmpty }

    /// Whether an error waits to be reported (after every queued datagram).
    var hasError: Bool { pendingError != nil }

    /// Takes the error waiting to be reported, if any. Receiving resumes with the next wait.
    func takeError() -> Int32? {
        defer { pendingError = nil }
        return pendingError
    }

    /// Waits until a datagram or an error arrives, the timeout expires, the socket closes or
    /// the task is cancelled. The result is one of ``ConnectionReceiver/WakeReason`` or
    /// `-ECANCELED`.
    func wait(timeout: Duration?, isolation: isolated (any Actor)? = #isolation) async -> Int32 {
        loop.assertInEventLoop()
        isStarted = true
        armIfNeeded()
        if let timeout {
            timer = loop.startTimer(timeout, handledBy: self)
        }
        let completion = await loop.suspend { id in
            // Something may have arrived since the caller looked.
            if hasDatagram || pendingError != nil || isClosed {
                loop.resume(id, with: Completion(result: isClosed ? ConnectionReceiver.WakeReason.closed : ConnectionReceiver.WakeReason.changed))
            } else {
                waiter = id
            }
        }
        waiter = nil
        if let timer {
            loop.requestCancel(timer)
            self.timer = nil
        }
        return completion.result
    }

    /// Hands out the oldest datagram without copying; a lent buffer comes back when the value
    /// is dropped.
    func take() -> ReceivedDatagram? {
        guard let entry = entries.popFirst() else { return nil }
        let message = entry.message
        let bytes: ReceivedBytes
        switch entry.storage {
        case .lent(let bufferID):
            let start = UnsafeRawPointer(loop.receiveBufferAddress(bufferID) + message.payloadOffset)
            bytes = ReceivedBytes(owner: self, bufferID: bufferID, start: start, count: message.count)
        case .copied(let copy):
            bytes = ReceivedBytes(owner: copy, bufferID: 0, start: copy.start, count: message.count)
        }
        return ReceivedDatagram(
            bytes: bytes, sender: message.sender ?? .ipv4(.any, port: 0),
            originalCount: message.originalCount, isTruncated: message.isTruncated)
    }

    // MARK: Buffers

    func returnBuffer(_ id: UInt16) {
        if loop.isRunningLoop {
            giveBack(id)
        } else {
            loop.returnBufferFromAnotherThread(id, to: self)
        }
    }

    private func giveBack(_ id: UInt16) {
        held -= 1
        loop.recycleReceiveBuffer(id)
        armIfNeeded()
    }

    func receiveBuffersAvailable() -> Bool {
        guard isWaitingForBuffers else { return false }
        isWaitingForBuffers = false
        armIfNeeded()
        return request != nil
    }

    // MARK: Closing

    /// Stops receiving, gives back queued buffers and ends a waiting reader with
    /// ``ConnectionReceiver/WakeReason/closed``.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let request { loop.requestCancel(request) }
        if let timer { loop.requestCancel(timer) }
        while let entry = entries.popFirst() {
            if case .lent(let bufferID) = entry.storage { giveBack(bufferID) }
        }
        if let waiter { loop.resume(waiter, with: Completion(result: ConnectionReceiver.WakeReason.closed)) }
    }

    // MARK: Completions

    private func armIfNeeded() {
        guard isStarted, request == nil, !isClosed, pendingError == nil, !isWaitingForBuffers, held < share else { return }
        request = loop.startReceivingMessages(fd, layout: layout, handledBy: self)
        if request == nil { pendingError = ESHUTDOWN }
    }

    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {
        if operation == timer {
            timer = nil
            if completion.result == -ETIME, let waiter {
                loop.resume(waiter, with: Completion(result: ConnectionReceiver.WakeReason.timedOut))
            }
            return
        }
        guard operation == request else { return }  // a cancelled timer's late completion
        if !completion.hasMore { request = nil }
        if let bufferID = completion.bufferID {
            queue(bufferID, filled: Int(completion.result))
        }
        if completion.result < 0 {
            switch -completion.result {
            case ENOBUFS:
                isWaitingForBuffers = true
                loop.waitForReceiveBuffers(self)
            case ECANCELED:
                break  // We paused it (share reached) or closed it.
            default:
                // Reported once, to the next call; receiving is re-armed after that.
                if !isClosed { pendingError = -completion.result }
            }
        }
        if held >= share, let request, completion.hasMore {
            // The reader is behind: stop taking buffers until it catches up.
            loop.requestCancel(request)
        }
        if let waiter, hasDatagram || pendingError != nil {
            self.waiter = nil
            loop.resume(waiter, with: Completion(result: ConnectionReceiver.WakeReason.changed))
        }
        if !completion.hasMore { armIfNeeded() }
    }

    /// Queues the datagram in buffer `bufferID`, lent while the socket is within its share,
    /// copied out past it.
    private func queue(_ bufferID: UInt16, filled: Int) {
        guard !isClosed, filled > 0, let message = layout.message(in: loop.receivedBuffer(bufferID, count: filled)) else {
            loop.recycleReceiveBuffer(bufferID)
            return
        }
        if held < share {
            held += 1
            entries.append(Entry(storage: .lent(bufferID: bufferID), message: message))
        } else {
            let payload = UnsafeRawBufferPointer(start: loop.receiveBufferAddress(bufferID) + message.payloadOffset, count: message.count)
            let copy = CopiedBytes(payload)
            loop.recycleReceiveBuffer(bufferID)
            entries.append(Entry(storage: .copied(copy), message: message))
        }
    }
}
