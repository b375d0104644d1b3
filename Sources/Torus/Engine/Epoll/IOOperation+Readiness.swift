import CURing
#if canImport(Glibc)
import Glibc
#endif

// The readiness form of every operation: the one place where an `IOOperation` becomes a
// non-blocking system call, made when its descriptor is ready (or at once, for the ones that
// wait for nothing).

/// What one non-blocking attempt at an operation gave.
enum ReadinessAttempt {
    /// The descriptor is not ready: wait for its next readiness edge.
    case wouldBlock
    /// A completion; `ends` says whether the operation is over (always, but for a multishot
    /// operation that stays armed). `shortRead`: a stream receive got fewer bytes than it had
    /// room for, which on a TCP socket usually means it took everything queued (the engine
    /// decides whether it may take it so; see `EpollEngine.shortReadDrained`).
    case completed(Completion, ends: Bool, shortRead: Bool = false)
    /// A receive into the loop's buffers filled `batch.filled` of them with one system call:
    /// one completion each, the operation staying armed.
    case receivedIntoBuffers(ReceiveBatch)
}

/// Up to ``capacity`` of the loop's receive buffers that one `recvmsg` filled, in order;
/// every one but the last is full.
struct ReceiveBatch {
    /// The most buffers one receive fills (4 × 16 KiB: the 64 KiB one `read` takes at most in
    /// SwiftNIO's adaptive allocator).
    static let capacity = 4

    var ids: InlineArray<4, UInt16> = .init(repeating: 0)
    /// Buffers filled (1 or more).
    var filled = 0
    /// Bytes received in all.
    var bytes = 0
    /// Fewer bytes came than the buffers offered had room for.
    var isShort = false
}

/// The readiness an operation waits for.
enum Readiness {
    case readable, writable
}

extension IOOperation {
    /// The descriptor the operation waits on and for what; nil for operations that wait for
    /// no descriptor (they complete at once, or at a deadline).
    var readiness: (fd: CInt, Readiness)? {
        switch self {
        case .accept(let fd), .receive(let fd, _), .receiveIntoBuffers(let fd), .receiveMessages(let fd, _):
            (fd, .readable)
        case .connect(let fd, _), .send(let fd, _), .sendVectors(let fd, _), .sendTo(let fd, _, _):
            (fd, .writable)
        case .nop, .close, .timer, .cancelAll:
            nil
        }
    }

    /// Makes one non-blocking attempt, the descriptor being (perhaps) ready. Receives into the
    /// loop's buffers take one from `buffers`. A connect is started by ``startConnecting()``;
    /// its attempts here read how it ended.
    /// `receiveWidth`: how many buffers a receive into the loop's buffers may fill at once
    /// (1 to ``ReceiveBatch/capacity``; the engine widens it for a socket whose receives fill
    /// every buffer they are offered).
    func attempt(buffers: inout ReceiveBufferPool, receiveWidth: Int = 1) -> ReadinessAttempt {
        switch self {
        case .accept(let fd):
            let accepted = retryingInterrupts { torus_accept4(fd, Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue)) }
            if accepted >= 0 { return .completed(Completion(result: accepted, flags: .more), ends: false) }
            return failure(errno)
        case .receive(let fd, let buffer):
            let count = retryingInterrupts { recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
            if count >= 0 { return .completed(Completion(result: Int32(count)), ends: true, shortRead: count > 0 && count < buffer.count) }
            return failure(errno)
        case .receiveIntoBuffers(let fd):
            if receiveWidth > 1 { return receiveIntoSeveral(fd, width: receiveWidth, buffers: &buffers) }
            guard let id = buffers.take() else { return .completed(Completion(result: -ENOBUFS), ends: true) }
            let count = retryingInterrupts { recv(fd, buffers.address(of: id), buffers.bufferSize, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                return .completed(Completion(result: Int32(count), flags: [.more, .buffer], bufferIndex: id), ends: false,
                                  shortRead: count < buffers.bufferSize)
            }
            let error = errno
            buffers.recycle(id)
            // 0: the end of the stream ends the receive, as a multishot receive does.
            if count == 0 { return .completed(Completion(result: 0), ends: true) }
            return failure(error)
        case .receiveMessages(let fd, _):
            return receiveMessage(fd, buffers: &buffers)
        case .connect(let fd, _):
            var error: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
            if error == EINPROGRESS || error == EALREADY { return .wouldBlock }
            return .completed(Completion(result: -error), ends: true)
        case .send(let fd, let buffer):
            let count = retryingInterrupts { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if count >= 0 { return .completed(Completion(result: Int32(count)), ends: true) }
            return failure(errno)
        case .sendVectors(let fd, let vectors):
            var message = msghdr()
            message.msg_iov = UnsafeMutablePointer(mutating: vectors.baseAddress)
            message.msg_iovlen = vectors.count
            let count = retryingInterrupts { sendmsg(fd, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if count >= 0 { return .completed(Completion(result: Int32(count)), ends: true) }
            return failure(errno)
        case .sendTo(let fd, let buffer, var address):
            let count = withUnsafePointer(to: &address.address) { storage in
                storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { name in
                    retryingInterrupts {
                        sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), name, address.length)
                    }
                }
            }
            if count >= 0 { return .completed(Completion(result: Int32(count)), ends: true) }
            return failure(errno)
        case .nop, .close, .timer, .cancelAll:
            preconditionFailure("\(self) waits for no descriptor")
        }
    }

    /// Starts a connect: `nil` while it is in progress (wait until writable), else its
    /// completion.
    func startConnecting() -> Completion? {
        guard case .connect(let fd, var address) = self else { preconditionFailure("not a connect") }
        let rc = withUnsafePointer(to: &address.address) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if rc == 0 { return Completion(result: 0) }
        switch errno {
        case EINPROGRESS, EINTR: return nil   // EINTR: the connect goes on in the background
        case let error: return Completion(result: -error)
        }
    }

    /// One `recvmsg` into up to `width` receive buffers (fewer when fewer are free), so that
    /// a socket with much to read takes it in one system call instead of one per buffer.
    private func receiveIntoSeveral(_ fd: CInt, width: Int, buffers: inout ReceiveBufferPool) -> ReadinessAttempt {
        var batch = ReceiveBatch()
        var vectors = InlineArray<4, iovec>(repeating: iovec())
        var offered = 0
        while offered < min(width, ReceiveBatch.capacity), let id = buffers.take() {
            batch.ids[offered] = id
            vectors[offered] = iovec(iov_base: buffers.address(of: id), iov_len: buffers.bufferSize)
            offered += 1
        }
        guard offered > 0 else { return .completed(Completion(result: -ENOBUFS), ends: true) }
        var span = vectors.mutableSpan
        let count = span.withUnsafeMutableBufferPointer { vectors in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = offered
            return retryingInterrupts { recvmsg(fd, &message, Int32(MSG_DONTWAIT)) }
        }
        let error = errno
        let filled = count > 0 ? (count + buffers.bufferSize - 1) / buffers.bufferSize : 0
        // Given back newest first, so that the pool hands out the same buffers next time.
        for index in stride(from: offered - 1, through: filled, by: -1) { buffers.recycle(batch.ids[index]) }
        if count > 0 {
            batch.filled = filled
            batch.bytes = count
            batch.isShort = count < offered * buffers.bufferSize
            return .receivedIntoBuffers(batch)
        }
        if count == 0 { return .completed(Completion(result: 0), ends: true) }
        return failure(error)
    }

    /// One datagram into one receive buffer, laid out as ``MessageLayout`` reads it (the same
    /// layout io_uring's multishot `recvmsg` writes): a `struct io_uring_recvmsg_out`, the
    /// sender's address, the payload.
    private func receiveMessage(_ fd: CInt, buffers: inout ReceiveBufferPool) -> ReadinessAttempt {
        guard let id = buffers.take() else { return .completed(Completion(result: -ENOBUFS), ends: true) }
        let base = buffers.address(of: id)
        let capacity = buffers.bufferSize - MessageLayout.overhead
        var vector = iovec(iov_base: base + MessageLayout.overhead, iov_len: capacity)
        var message = msghdr()
        message.msg_name = base + MemoryLayout<io_uring_recvmsg_out>.size
        message.msg_namelen = socklen_t(MessageLayout.nameCapacity)
        // MSG_TRUNC: the result is the datagram's full length even when it did not fit.
        let count = withUnsafeMutablePointer(to: &vector) { vector in
            message.msg_iov = vector
            message.msg_iovlen = 1
            return retryingInterrupts { recvmsg(fd, &message, Int32(MSG_DONTWAIT | MSG_TRUNC)) }
        }
        guard count >= 0 else {
            let error = errno
            buffers.recycle(id)
            return failure(error)
        }
        var out = io_uring_recvmsg_out()
        out.namelen = UInt32(message.msg_namelen)
        out.controllen = 0
        out.payloadlen = UInt32(count)
        out.flags = UInt32(bitPattern: message.msg_flags)
        base.storeBytes(of: out, as: io_uring_recvmsg_out.self)
        let filled = MessageLayout.overhead + min(count, capacity)
        return .completed(Completion(result: Int32(filled), flags: [.more, .buffer], bufferIndex: id), ends: false)
    }

    /// `EAGAIN` means not ready; anything else ends the operation with that error.
    private func failure(_ error: Int32) -> ReadinessAttempt {
        if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
        return .completed(Completion(result: -error), ends: true)
    }
}

/// Calls `body` again while it fails with `EINTR`.
@inline(__always)
private func retryingInterrupts<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result >= 0 || errno != EINTR { return result }
    }
}
