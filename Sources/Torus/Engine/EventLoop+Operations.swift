import CURing
#if canImport(Glibc)
import Glibc
#endif

// The operations the socket types ask of the engine, in POSIX terms: descriptors, addresses,
// byte buffers and results as `-errno`. Each is one `IOOperation`, which the loop's engine
// (io_uring or epoll) carries out; nothing here knows which.
//
// Every call must run on the loop, isolated to an actor on it (the socket actors): the
// `isolation` parameter carries that actor through the cancellation handler and the
// continuation, so that the round trip never leaves the loop thread. Buffers passed in must
// stay valid until the call returns; it returns only after the engine's final completion,
// even when the task is cancelled.

extension EventLoop {
    /// Connects `fd` to `address`.
    func connect(
        _ fd: CInt, to address: SocketAddress.Storage, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(.connect(fd, address), timeout: timeout)
    }

    /// Receives at most `buffer.count` bytes. 0 means end of stream.
    @inline(__always)
    func receive(
        _ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(.receive(fd, buffer), timeout: timeout)
    }

    /// Sends bytes; the result may be a short count. Never raises SIGPIPE.
    @inline(__always)
    func send(
        _ fd: CInt, _ buffer: UnsafeRawBufferPointer, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(.send(fd, buffer), timeout: timeout)
    }

    /// Sends several buffers in one `sendmsg`; the result may be a short count. `vectors` must
    /// stay unchanged until the call returns.
    func send(
        _ fd: CInt, vectors: UnsafeBufferPointer<iovec>, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(.sendVectors(fd, vectors), timeout: timeout)
    }

    /// Closes a descriptor.
    func close(_ fd: CInt, isolation: isolated (any Actor)? = #isolation) async -> Completion {
        // A close must happen even if the task is cancelled: a leaked descriptor is worse
        // than a call that finishes after its caller lost interest. With the loop stopped, the
        // descriptor is closed directly.
        let completion = await submit(.close(fd), cancellable: false)
        if completion.result == -ESHUTDOWN {
            return Completion(result: Glibc.close(fd) == 0 ? 0 : -errno)
        }
        return completion
    }

    /// An operation that does nothing: one round trip through the engine.
    func nop(isolation: isolated (any Actor)? = #isolation) async -> Completion {
        await submit(.nop)
    }

    /// Completes after `duration`: `-ETIME` when it elapsed, `-ECANCELED` if cancelled.
    func timer(_ duration: Duration, isolation: isolated (any Actor)? = #isolation) async -> Completion {
        await submit(.timer(duration))
    }

    /// Starts one `sendmsg` of `vectors` whose completion goes to `handler`; the result may
    /// be a short count. The vectors and the bytes they point to must stay valid and unchanged
    /// until the completion. With `timeout`, the send is cancelled when it expires (its
    /// completion then carries `-ECANCELED`). Returns nil when the loop is stopping.
    func startSending(_ fd: CInt, vectors: UnsafeBufferPointer<iovec>, timeout: Duration? = nil, handledBy handler: any CompletionHandler) -> OperationID? {
        // One buffer goes as a plain send: `sendmsg` costs a `msghdr` to build and for the
        // kernel to copy in (and io_uring an async context), for nothing.
        if vectors.count == 1 {
            let buffer = UnsafeRawBufferPointer(start: vectors[0].iov_base, count: vectors[0].iov_len)
            return submit(.send(fd, buffer), handledBy: handler, timeout: timeout)
        }
        return submit(.sendVectors(fd, vectors), handledBy: handler, timeout: timeout)
    }

    /// Starts a timer whose expiry goes to `handler`. Returns nil when the loop is stopping.
    func startTimer(_ duration: Duration, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(.timer(duration), handledBy: handler)
    }

    /// Arms a multishot accept on listening socket `fd`; every accepted descriptor (with
    /// `O_CLOEXEC`, and non-blocking when the engine needs it) goes to `handler`. Returns nil
    /// when the loop is stopping.
    func startAccepting(_ fd: CInt, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(.accept(fd), handledBy: handler)
    }

    /// The `type` argument of `socket(2)` for a socket of `kind` on this loop: with
    /// `SOCK_CLOEXEC`, and `SOCK_NONBLOCK` when the engine waits for readiness.
    func socketType(_ kind: SocketKind) -> Int32 {
        kind.type | Int32(SOCK_CLOEXEC.rawValue) | io.socketFlags
    }
}

/// Stream (TCP, Unix-domain stream) or datagram (UDP) socket.
enum SocketKind {
    case stream, datagram

    /// `SOCK_STREAM` or `SOCK_DGRAM`.
    var type: Int32 {
        switch self {
        case .stream: Int32(SOCK_STREAM.rawValue)
        case .datagram: Int32(SOCK_DGRAM.rawValue)
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
