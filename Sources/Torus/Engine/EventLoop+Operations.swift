import CURing
#if canImport(Glibc)
import Glibc
#endif

// The operations the socket types ask of the engine, in POSIX terms: descriptors, addresses,
// byte buffers and results as `-errno`. Nothing here leaks io_uring into `Sockets/`, so a
// second engine (epoll) can offer the same set.
//
// Every call must run on the loop, isolated to an actor on it (the socket actors): the
// `isolation` parameter carries that actor through the cancellation handler and the
// continuation, so that the round trip never leaves the loop thread. Buffers passed in must
// stay valid until the call returns; it returns only after the kernel's final completion,
// even when the task is cancelled.

extension EventLoop {
    /// Connects `fd` to the address in `address` (`length` bytes).
    func connect(
        _ fd: CInt, to address: sockaddr_storage, length: socklen_t, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(timeout: timeout, arenaBytes: MemoryLayout<sockaddr_storage>.stride) { sqe, arena in
            let stable = arena.allocate(sockaddr_storage.self)
            stable.pointee = address
            stable.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                io_uring_prep_connect(sqe, fd, pointer, length)
            }
        }
    }

    /// Receives at most `buffer.count` bytes. 0 means end of stream.
    @inline(__always)
    func receive(
        _ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(timeout: timeout) { sqe, _ in
            io_uring_prep_recv(sqe, fd, buffer.baseAddress, buffer.count, 0)
        }
    }

    /// Sends bytes; the result may be a short count. Never raises SIGPIPE.
    @inline(__always)
    func send(
        _ fd: CInt, _ buffer: UnsafeRawBufferPointer, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(timeout: timeout) { sqe, _ in
            io_uring_prep_send(sqe, fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        }
    }

    /// Sends several buffers in one `sendmsg`; the result may be a short count.
    func send(
        _ fd: CInt, vectors: UnsafeBufferPointer<iovec>, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(timeout: timeout, arenaBytes: Self.sendmsgArenaBytes(vectors.count)) { sqe, arena in
            Self.prepareSendmsg(sqe, &arena, fd, vectors)
        }
    }

    /// Closes a descriptor.
    func close(_ fd: CInt, isolation: isolated (any Actor)? = #isolation) async -> Completion {
        // A close must happen even if the task is cancelled: a leaked descriptor is worse
        // than a call that finishes after its caller lost interest. With the ring gone, the
        // descriptor is closed directly.
        let completion = await submit(cancellable: false) { sqe, _ in io_uring_prep_close(sqe, fd) }
        if completion.result == -ESHUTDOWN {
            return Completion(result: Glibc.close(fd) == 0 ? 0 : -errno)
        }
        return completion
    }

    /// A request that does nothing: one round trip through the ring.
    func nop(isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit { sqe, _ in io_uring_prep_nop(sqe) }
    }

    /// Completes after `duration`: `-ETIME` when it elapsed, `-ECANCELED` if cancelled.
    func timer(_ duration: Duration, isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(arenaBytes: MemoryLayout<__kernel_timespec>.stride) { sqe, arena in
            let timespec = arena.allocate(__kernel_timespec.self)
            timespec.pointee = __kernel_timespec(duration)
            io_uring_prep_timeout(sqe, timespec, 0, 0)
        }
    }

    /// Arena bytes a `sendmsg` of `count` vectors needs: its `msghdr` and a copy of the vectors.
    @inline(__always)
    static func sendmsgArenaBytes(_ count: Int) -> Int {
        MemoryLayout<msghdr>.stride + MemoryLayout<iovec>.stride * count + 16
    }

    /// Prepares a `sendmsg` of `vectors` (copied into the arena, so the caller's array may
    /// change once submitted) that never raises SIGPIPE.
    @inline(__always)
    static func prepareSendmsg(
        _ sqe: UnsafeMutablePointer<io_uring_sqe>, _ arena: inout SubmissionArena,
        _ fd: CInt, _ vectors: UnsafeBufferPointer<iovec>
    ) {
            let stableVectors = arena.allocate(iovec.self, count: vectors.count)
            stableVectors.update(from: vectors.baseAddress!, count: vectors.count)
            let message = arena.allocate(msghdr.self)
            message.pointee = msghdr()
            message.pointee.msg_iov = stableVectors
            message.pointee.msg_iovlen = vectors.count
            io_uring_prep_sendmsg(sqe, fd, message, UInt32(MSG_NOSIGNAL))
    }

    /// Starts one `sendmsg` of `vectors` whose completion goes to `handler`; the result may
    /// be a short count. The vectors are copied at submission; the bytes they point to must
    /// stay valid until the completion. With `timeout`, a linked timeout cancels the send when
    /// it expires (its completion then carries `-ECANCELED`). Returns nil when the loop is
    /// stopping.
    func startSending(_ fd: CInt, vectors: UnsafeBufferPointer<iovec>, timeout: Duration? = nil, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(handledBy: handler, timeout: timeout, arenaBytes: Self.sendmsgArenaBytes(vectors.count)) { sqe, arena in
            Self.prepareSendmsg(sqe, &arena, fd, vectors)
        }
    }

    /// Starts a timer whose expiry goes to `handler`. Returns nil when the loop is stopping.
    func startTimer(_ duration: Duration, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(handledBy: handler, arenaBytes: MemoryLayout<__kernel_timespec>.stride) { sqe, arena in
            let timespec = arena.allocate(__kernel_timespec.self)
            timespec.pointee = __kernel_timespec(duration)
            io_uring_prep_timeout(sqe, timespec, 0, 0)
        }
    }

    /// Arms a multishot accept on listening socket `fd`; every accepted descriptor (with
    /// `O_CLOEXEC`) goes to `handler`. Returns nil when the loop is stopping.
    func startAccepting(_ fd: CInt, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(handledBy: handler) { sqe, _ in
            io_uring_prep_multishot_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        }
    }
}

extension EventLoop {
    /// Suspends the current task for `duration`, using a timer on this loop's ring.
    ///
    /// - Throws: `CancellationError` if the task is cancelled first, or a ``TorusError`` of
    ///   kind ``TorusError/Kind/eventLoopShutDown`` if the loop stops.
    public func sleep(for duration: Duration) async throws {
        let completion: Completion
        if isInEventLoop {
            completion = await timer(duration)
        } else {
            completion = await withTaskExecutorPreference(self) { await self.timer(duration) }
        }
        switch completion.result {
        case -ETIME, 0: return
        case -ESHUTDOWN: throw TorusError(.eventLoopShutDown, operation: .sleep)
        default: throw CancellationError()
        }
    }
}
