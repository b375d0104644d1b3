#if canImport(Glibc)
import Glibc
#endif

/// The receiving half of a socket: one multishot receive into the loop's buffers, the
/// entries it brought that the reader has not taken yet, and the reader waiting for more.
/// ``ReceiveState`` makes every decision; this carries them out on the loop.
///
/// It serves a ``Connection`` (a byte stream: entries can be consumed piece by piece, end
/// of stream and the first error are final) and a ``DatagramSocket`` (one datagram per
/// entry, with its sender; an error is reported once). The socket types see only what it
/// offers here: entries, the end, an error, and why a wait ended.
final class Receiver: CompletionHandler, ReceiveBufferOwner, ReceiveBufferWaiter, @unchecked Sendable {
    // @unchecked Sendable: all state is touched on `loop`'s thread only. The one entry point
    // callable from elsewhere, `returnBuffer`, forwards to the loop when off it.

    /// Why a wait ended.
    enum WaitResult {
        /// Look again: an entry, the end or an error arrived.
        case changed
        /// The wait's timeout expired.
        case timedOut
        /// The socket was closed.
        case closed
        /// The task was cancelled.
        case cancelled
        /// The loop is stopping.
        case loopShutDown
    }

    /// Received bytes waiting for the reader: in a buffer lent to this socket or, past its
    /// share, copied out so the buffer could go straight back.
    private struct Entry {
        enum Storage {
            case lent(bufferID: UInt16)
            case copied(CopiedBytes)
        }
        var storage: Storage
        var offset: Int
        var count: Int
        /// For a datagram: where it came from and how it was cut.
        var datagram: MessageLayout.Message?
    }

    private let fd: CInt
    private let loop: EventLoop
    /// How datagrams lie in a buffer; nil for a stream.
    private let layout: MessageLayout?
    // `@exclusivity(unchecked)`: read and written on every receive, on the loop thread only,
    // and no access overlaps another to the same property (see `EventLoop`'s state).
    @exclusivity(unchecked) private var state: ReceiveState
    @exclusivity(unchecked) private var entries = FIFO<Entry>(initialCapacity: 4)
    @exclusivity(unchecked) private var request: OperationID?
    @exclusivity(unchecked) private var waiter: OperationID?
    @exclusivity(unchecked) private var timer: OperationID?
    /// Bytes received so far.
    @exclusivity(unchecked) private(set) var bytesReceived: UInt64 = 0
    /// Set by ``drain()``: the stream ends for the reader once nothing more is on its way.
    @exclusivity(unchecked) private(set) var isDraining = false

    init(fd: CInt, loop: EventLoop, kind: ReceiveState.Kind) {
        self.fd = fd
        self.loop = loop
        self.layout = kind == .datagram ? MessageLayout() : nil
        self.state = ReceiveState(kind: kind, share: loop.configuration.receiveBuffersPerConnection)
    }

    // MARK: Reader side

    /// Whether an entry is queued.
    var hasData: Bool { !entries.isEmpty }
    /// The stream ended (after the entries queued before the end), or it is draining and
    /// nothing more is on its way.
    var reachedEnd: Bool { state.reachedEnd || endedByDrain }
    /// The errno the stream failed with (after the entries queued before it).
    var failure: Int32? { state.failure }

    /// Takes the error waiting to be reported, if any: for a datagram socket receiving goes
    /// on with the next wait.
    func takeError() -> Int32? { state.takeFailure() }

    /// Waits until an entry, the end or an error arrives, the timeout expires, the socket
    /// closes or the task is cancelled.
    @inline(__always)
    func wait(timeout: Duration?, isolation: isolated (any Actor)? = #isolation) async -> WaitResult {
        loop.assertInEventLoop()
        state.start()
        if isDraining { prepareDrainingWait() }
        armIfNeeded()
        if let timeout {
            timer = loop.startTimer(timeout, handledBy: self)
        }
        let completion = await loop.suspend { id in
            // Something may have arrived since the caller looked (the task can be suspended
            // on its way here); if so, do not wait for more.
            if state.hasNews || state.isClosed || endedByDrain {
                loop.resume(id, with: Completion(result: 0))
            } else {
                waiter = id
            }
        }
        waiter = nil
        state.drainingReaderWaits = false
        if let timer {
            loop.requestCancel(timer)
            self.timer = nil
        }
        switch completion.result {
        case 0: return state.isClosed ? .closed : .changed
        case -ETIME: return .timedOut
        case -ESHUTDOWN: return .loopShutDown
        default: return .cancelled
        }
    }

    /// Copies up to `destination.count` bytes of the oldest entry; returns the count.
    func copy(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let entry = entries.first else { return 0 }
        let count = min(entry.count, destination.count)
        destination.baseAddress!.copyMemory(from: start(of: entry), byteCount: count)
        consumeFirst(count)
        return count
    }

    /// Up to `maxBytes` of the oldest entry as an array.
    func copy(maxBytes: Int) -> [UInt8] {
        guard let entry = entries.first else { return [] }
        return [UInt8](unsafeUninitializedCapacity: min(maxBytes, entry.count)) { buffer, initialized in
            initialized = copy(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Hands out the oldest entry without copying; a lent buffer comes back when the value is
    /// dropped.
    func take() -> ReceivedBytes? {
        guard let entry = entries.popFirst() else { return nil }
        let bytes = receivedBytes(entry)
        if state.consumed() { arm() }
        return bytes
    }

    /// Hands out the oldest datagram without copying.
    func takeDatagram() -> ReceivedDatagram? {
        guard let entry = entries.popFirst() else { return nil }
        let message = entry.datagram!
        let datagram = ReceivedDatagram(
            bytes: receivedBytes(entry), sender: message.sender ?? .ipv4(.any, port: 0),
            originalCount: message.originalCount, isTruncated: message.isTruncated)
        if state.consumed() { arm() }
        return datagram
    }

    private func receivedBytes(_ entry: Entry) -> ReceivedBytes {
        switch entry.storage {
        case .lent(let bufferID):
            ReceivedBytes(owner: self, bufferID: bufferID, start: start(of: entry), count: entry.count)
        case .copied(let bytes):
            ReceivedBytes(owner: bytes, bufferID: 0, start: start(of: entry), count: entry.count)
        }
    }

    private func start(of entry: Entry) -> UnsafeRawPointer {
        switch entry.storage {
        case .lent(let bufferID): UnsafeRawPointer(loop.receiveBufferAddress(bufferID) + entry.offset)
        case .copied(let bytes): bytes.start + entry.offset
        }
    }

    private func consumeFirst(_ count: Int) {
        guard let entry = entries.first else { return }
        guard count < entry.count else {
            _ = entries.popFirst()
            var armNow = state.consumed()
            if case .lent(let bufferID) = entry.storage {
                loop.recycleReceiveBuffer(bufferID)
                armNow = state.bufferReturned() || armNow
            }
            if armNow { arm() }
            return
        }
        // A reader asked for fewer bytes than the entry holds: keep the rest in front.
        entries.updateFirst { entry in
            entry.offset += count
            entry.count -= count
        }
    }

    // MARK: Buffers

    func returnBuffer(_ id: UInt16) {
        if loop.isRunningLoop {
            loop.recycleReceiveBuffer(id)
            if state.bufferReturned() { arm() }
        } else {
            loop.returnBufferFromAnotherThread(id, to: self)
        }
    }

    func receiveBuffersAvailable() -> Bool {
        guard let armNow = state.buffersAvailable() else { return false }
        if armNow { arm() }
        return request != nil
    }

    // MARK: Draining

    /// Ends the stream for the reader without closing anything: once the entries queued now,
    /// and the bytes the kernel already holds for this socket, have been handed out, the
    /// reader finds the end (a waiting reader at once). The socket's writes go on. For a
    /// stream only; draining twice does nothing more.
    func drain() {
        guard !isDraining else { return }
        isDraining = true
        state.drain()
        // The reader looks again (see `prepareDrainingWait`).
        if let waiter {
            self.waiter = nil
            loop.resume(waiter, with: Completion(result: 0))
        }
    }

    /// Before a draining reader waits (with nothing queued): if the kernel holds bytes, the
    /// receive is to bring them; if not, the receive in flight is stopped, and its final
    /// completion wakes the reader to find the end.
    private func prepareDrainingWait() {
        if kernelHoldsBytes {
            state.drainingReaderWaits = true
        } else if state.stopForDrain(), let request {
            loop.requestCancel(request)
        }
    }

    /// Draining, with no end or error of the stream's own to report first, no receive in
    /// flight (whose completions could still bring bytes) and no bytes in the kernel. Bytes
    /// queued here are the reader's to take first (`hasData`).
    private var endedByDrain: Bool {
        isDraining && !state.reachedEnd && state.failure == nil && !state.isClosed && !state.isArmed && !kernelHoldsBytes
    }

    /// Whether the socket holds received bytes no receive has taken yet (FIONREAD, that is
    /// SIOCINQ): bytes the peer sent before the drain, which must not be dropped.
    private var kernelHoldsBytes: Bool {
        var pending: CInt = 0
        guard ioctl(fd, UInt(FIONREAD), &pending) == 0 else { return false }
        return pending > 0
    }

    // MARK: Closing

    /// Stops receiving, gives back queued buffers and ends a waiting reader.
    func close() {
        let cancelReceive = state.close()
        if cancelReceive, let request { loop.requestCancel(request) }
        if let timer { loop.requestCancel(timer) }
        while let entry = entries.popFirst() {
            if case .lent(let bufferID) = entry.storage {
                loop.recycleReceiveBuffer(bufferID)
                _ = state.bufferReturned()
            }
        }
        state.discardQueued()
        if let waiter { loop.resume(waiter, with: Completion(result: 0)) }
    }

    // MARK: Completions

    private func armIfNeeded() {
        if state.shouldArm() { arm() }
    }

    /// Arms the receive the state said to arm.
    private func arm() {
        request = if let layout {
            loop.startReceivingMessages(fd, layout: layout, handledBy: self)
        } else {
            loop.startReceiving(fd, handledBy: self)
        }
        if request == nil { state.armFailed() }
    }

    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {
        if operation == timer {
            timer = nil
            if completion.result == -ETIME, let waiter {
                loop.resume(waiter, with: Completion(result: -ETIME))
            }
            return
        }
        guard operation == request else { return }  // a cancelled timer's late completion
        if !completion.hasMore { request = nil }
        let bufferID = completion.bufferID
        var message: MessageLayout.Message?
        if let bufferID, completion.result > 0 {
            if let layout {
                message = layout.message(in: loop.receivedBuffer(bufferID, count: Int(completion.result)))
                bytesReceived &+= UInt64(message?.count ?? 0)
            } else {
                bytesReceived &+= UInt64(completion.result)
            }
        }
        let usable: Bool? = bufferID.map { _ in completion.result > 0 && (layout == nil || message != nil) }
        let outcome = state.completed(result: completion.result, hasMore: completion.hasMore,
                                      usableBuffer: usable, buffersFree: loop.hasFreeReceiveBuffers)
        if let bufferID, let use = outcome.buffer {
            queue(bufferID, count: Int(completion.result), message: message, use)
        }
        if outcome.waitForBuffers { loop.waitForReceiveBuffers(self) }
        if outcome.pause, let request { loop.requestCancel(request) }
        // A draining reader also looks again when the receive has ended: it may be the end.
        if let waiter, state.hasNews || (isDraining && !state.isArmed) {
            self.waiter = nil
            loop.resume(waiter, with: Completion(result: 0))
        }
        if outcome.arm { arm() }
    }

    private func queue(_ bufferID: UInt16, count: Int, message: MessageLayout.Message?, _ use: ReceiveState.BufferUse) {
        let offset = message?.payloadOffset ?? 0
        let payload = message?.count ?? count
        switch use {
        case .giveBack:
            loop.recycleReceiveBuffer(bufferID)
        case .lend:
            entries.append(Entry(storage: .lent(bufferID: bufferID), offset: offset, count: payload, datagram: message))
        case .copy:
            let bytes = CopiedBytes.make(copying: UnsafeRawBufferPointer(start: loop.receiveBufferAddress(bufferID) + offset, count: payload))
            loop.recycleReceiveBuffer(bufferID)
            entries.append(Entry(storage: .copied(bytes), offset: 0, count: payload, datagram: message))
        }
    }
}
