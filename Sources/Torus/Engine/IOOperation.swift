#if canImport(Glibc)
import Glibc
#endif

/// One request to an engine, as a value: what to do, on which descriptor, with which memory.
///
/// Each engine turns an operation into its own form in one place: the io_uring engine into a
/// submission queue entry (`IOOperation+IOUring.swift`), the epoll engine into a non-blocking
/// system call made when the descriptor is ready (`IOOperation+Readiness.swift`). Adding an
/// operation means adding a case here and both forms there.
///
/// Memory an operation points to (data buffers, vectors, a message header) must stay valid and
/// unmoved until the operation's final completion. Values held inline (addresses, durations)
/// are copied by the engine.
enum IOOperation {
    /// Does nothing: one round trip through the engine. Completes with 0.
    case nop
    /// Connects `fd` to an address. Completes with 0 or `-errno`.
    case connect(CInt, SocketAddress.Storage)
    /// Accepts connections on listening socket `fd` (multishot): one completion per accepted
    /// descriptor (with `O_CLOEXEC`), flagged ``CompletionFlags/more`` while it stays armed.
    case accept(CInt)
    /// Receives at most `buffer.count` bytes into `buffer`. 0 means end of stream.
    case receive(CInt, UnsafeMutableRawBufferPointer)
    /// Receives into the loop's receive buffers (multishot): one completion per filled buffer
    /// (``CompletionFlags/buffer``), 0 at end of stream, `-ENOBUFS` when the loop has none left.
    case receiveIntoBuffers(CInt)
    /// Receives datagrams into the loop's receive buffers (multishot), one per buffer laid out
    /// as ``MessageLayout`` describes; `header` is the layout's header, alive until the final
    /// completion.
    case receiveMessages(CInt, header: UnsafeMutablePointer<msghdr>)
    /// Sends bytes; the result may be a short count. Never raises SIGPIPE.
    case send(CInt, UnsafeRawBufferPointer)
    /// Sends several buffers in one `sendmsg`; the result may be a short count.
    case sendVectors(CInt, UnsafeBufferPointer<iovec>)
    /// Sends one datagram to an address. Never raises SIGPIPE.
    case sendTo(CInt, UnsafeRawBufferPointer, SocketAddress.Storage)
    /// Closes a descriptor. Completes with 0 or `-errno`.
    case close(CInt)
    /// Completes with `-ETIME` after the duration, or `-ECANCELED` if cancelled first.
    case timer(Duration)
    /// Cancels every operation in flight on `fd`.
    case cancelAll(CInt)
}
