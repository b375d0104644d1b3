import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The receiving half of a ``Connection``: one multishot receive over the loop's provided
/// buffers, the buffers it filled that the reader has not consumed yet, and the reader waiting
/// for more.
///
/// Receiving starts with the first read and then runs ahead of the reader by at most
/// `share` buffers: when the connection holds that many (queued here or lent out as
/// ``ReceivedBytes``), the receive is cancelled and re-armed once the reader gives one back.
/// The kernel may fill several buffers before the cancel reaches it (a multishot receive
/// drains what the socket holds in one pass); those are copied out and returned at once, so a
/// connection never keeps more than its share of the ring.
/// When the loop runs out of buffers (`ENOBUFS`), the receiver waits for one to come back
/// rather than retrying on a timer.
final class ConnectionReceiver: CompletionHandler, ReceiveBufferOwner, ReceiveBufferWaiter, @unchecked Sendable {
    // @unchecked Sendable: all state is touched on `loop`'s thread only. The one entry point
    // callable from elsewhere, `returnBuffer`, forwards to the loop when off it.

    /// Why a wait for data ended, as the result of the waiter's completion.
    enum WakeReason {
        /// Look again: data, end of stream or an error arrived.
        static let changed: Int32 = 0
        /// The read's timeout expired.
        static let timedOut: Int32 = -ETIME
        /// The connection was closed.
        static let closed: Int32 = -EBADF
    }

    /// Received bytes waiting for the reader: in a ring buffer lent to this connection, or,
    /// past the connection's share, copied out so the buffer could go straight back.
    private struct Chunk {
        enum Storage {
            case lent(bufferID: UInt16)
            case copied(CopiedBytes)
        }
        var storage: Storage
        var offset: Int
        var count: Int
    }

    private let fd: CInt
    private let loop: EventLoop
    private let share: Int
    // `@exclusivity(unchecked)`: read and written on every receive, on the loop thread only,
    // and no access overlaps another to the same property (see `EventLoop`'s state).
    @exclusivity(unchecked) private var chunks = FIFO<Chunk>(initialCapacity: 4)
    /// Buffers taken from the ring and not yet given back: queued in `chunks` or lent out.
    @exclusivity(unchecked) private var held = 0
    @exclusivity(unchecked) private var request: OperationID?
    @exclusivity(unchecked) private var waiter: OperationID?
    @exclusivity(unchecked) private var timer: OperationID?
    @exclusivity(unchecked) private var isStarted = false
    @exclusivity(unchecked) private var isWaitingForBuffers = false
    @exclusivity(unchecked) private var isClosed = false
    /// The end of the stream arrived (after the chunks queued before it).
    @exclusivity(unchecked) private(set) var reachedEnd = false
    /// The errno the receive failed with, after the chunks queued before it.
    @exclusivity(unchecked) private(set) var failure: Int32?
    /// Bytes received so far.
    @exclusivity(unchecked) private(set) var bytesReceived: UInt64 = 0

    init(fd: CInt, loop: EventLoop) {
        self.fd = fd
        self.loop = loop
        self.share = max(1, loop.configuration.receiveBuffersPerConnection)
    }

    // MARK: Reader side

    /// Whether bytes are queued.
    var hasData: Bool { !chunks.isEmpty }

    /// Waits until something changes (bytes, end, error), the timeout expires, the connection
    /// closes or the task is cancelled. The result is one of ``WakeReason`` or `-ECANCELED`.
    @inline(__always)
    func wait(timeout: Duration?, isolation: isolated (any Actor)? = #isolation) async -> Int32 {
        loop.assertInEventLoop()
        isStarted = true
        armIfNeeded()
        if let timeout {
            timer = loop.startTimer(timeout, handledBy: self)
        }
        let completion = await loop.suspend { id in
            // Something may have arrived since the caller looked (the task can be suspended
            // on its way here); if so, do not wait for more.
            if hasData || reachedEnd || failure != nil || isClosed {
                loop.resume(id, with: Completion(result: isClosed ? WakeReason.closed : WakeReason.changed))
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

    /// Copies up to `destination.count` bytes of the oldest chunk; returns the count.
    func copy(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let chunk = chunks.first else { return 0 }
        let count = min(chunk.count, destination.count)
        destination.baseAddress!.copyMemory(from: start(of: chunk), byteCount: count)
        consumeFirst(count)
        return count
    }

    /// Up to `maxBytes` of the oldest chunk as an array.
    func copy(maxBytes: Int) -> [UInt8] {
        guard let chunk = chunks.first else { return [] }
        return [UInt8](unsafeUninitializedCapacity: min(maxBytes, chunk.count)) { buffer, initialized in
            initialized = copy(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Hands out the oldest chunk without copying; a lent buffer comes back when the value is
    /// dropped.
    func take() -> ReceivedBytes? {
        guard let chunk = chunks.popFirst() else { return nil }
        switch chunk.storage {
        case .lent(let bufferID):
            return ReceivedBytes(owner: self, bufferID: bufferID, start: start(of: chunk), count: chunk.count)
        case .copied(let bytes):
            return ReceivedBytes(owner: bytes, bufferID: 0, start: start(of: chunk), count: chunk.count)
        }
    }

    private func start(of chunk: Chunk) -> UnsafeRawPointer {
        switch chunk.storage {
        case .lent(let bufferID): UnsafeRawPointer(loop.receiveBufferAddress(bufferID) + chunk.offset)
        case .copied(let bytes): bytes.start + chunk.offset
        }
    }

    private func consumeFirst(_ count: Int) {
        guard let chunk = chunks.first else { return }
        guard count < chunk.count else {
            _ = chunks.popFirst()
            if case .lent(let bufferID) = chunk.storage { giveBack(bufferID) }
            return
        }
        // A reader asked for fewer bytes than the chunk holds: keep the rest in front.
        chunks.updateFirst { chunk in
            chunk.offset += count
            chunk.count -= count
        }
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
    /// ``WakeReason/closed``.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let request { loop.requestCancel(request) }
        if let timer { loop.requestCancel(timer) }
        while let chunk = chunks.popFirst() {
            if case .lent(let bufferID) = chunk.storage { giveBack(bufferID) }
        }
        if let waiter { loop.resume(waiter, with: Completion(result: WakeReason.closed)) }
    }

    // MARK: Completions

    private func armIfNeeded() {
        // Bytes copied out past the buffer share count too: a reader that keeps giving buffers
        // back while it falls behind must not let the copies pile up without bound.
        guard isStarted, request == nil, !isClosed, !reachedEnd, failure == nil, !isWaitingForBuffers,
              held < share, chunks.count < share else { return }
        request = loop.startReceiving(fd, handledBy: self)
        if request == nil { failure = ESHUTDOWN }
    }

    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {
        if operation == timer {
            timer = nil
            if completion.result == -ETIME, let waiter {
                loop.resume(waiter, with: Completion(result: WakeReason.timedOut))
            }
            return
        }
        guard operation == request else { return }  // a cancelled timer's late completion
        if !completion.hasMore { request = nil }
        if let bufferID = completion.bufferID {
            let count = Int(completion.result)
            if count > 0 { bytesReceived &+= UInt64(count) }
            if isClosed || count <= 0 {
                loop.recycleReceiveBuffer(bufferID)
            } else if held < share {
                held += 1
                chunks.append(Chunk(storage: .lent(bufferID: bufferID), offset: 0, count: count))
            } else {
                let bytes = CopiedBytes(UnsafeRawBufferPointer(start: loop.receiveBufferAddress(bufferID), count: count))
                loop.recycleReceiveBuffer(bufferID)
                chunks.append(Chunk(storage: .copied(bytes), offset: 0, count: count))
            }
        }
        if completion.result == 0 {
            reachedEnd = true
        } else if completion.result < 0 {
            switch -completion.result {
            case ENOBUFS:
                isWaitingForBuffers = true
                loop.waitForReceiveBuffers(self)
            case ECANCELED:
                break  // We paused it (share reached) or closed it.
            default:
                failure = -completion.result
            }
        }
        if held >= share || chunks.count >= share, let request, completion.hasMore {
            // The reader is behind: stop taking buffers until it catches up.
            loop.requestCancel(request)
        }
        if let waiter, hasData || reachedEnd || failure != nil {
            self.waiter = nil
            loop.resume(waiter, with: Completion(result: WakeReason.changed))
        }
        if !completion.hasMore { armIfNeeded() }
    }
}


/// Received bytes copied out of a ring buffer, for a connection past its share of buffers.
final class CopiedBytes: ReceiveBufferOwner, @unchecked Sendable {
    // @unchecked Sendable: the memory is written once, in init, and only read afterwards.
    let start: UnsafeRawPointer

    init(_ bytes: UnsafeRawBufferPointer) {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 16)
        copy.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        start = UnsafeRawPointer(copy)
    }

    deinit { start.deallocate() }

    /// Nothing to give back: the memory goes with the last reference.
    func returnBuffer(_ id: UInt16) {}
}
