#if canImport(Glibc)
import Glibc
#endif

// The datagram operations the engine offers to `Sockets/`, in POSIX terms like those in
// EventLoop+Operations.swift: a send to an address, and a multishot receive whose completions
// are read back through `MessageLayout` (which alone knows how a message lies in a receive
// buffer, the same for both engines).

extension EventLoop {
    /// Sends `buffer` as one datagram to `address`. The result is the number of bytes sent, or
    /// `-errno`. Never raises SIGPIPE.
    func send(
        _ fd: CInt, _ buffer: UnsafeRawBufferPointer, to address: SocketAddress.Storage, timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        await submit(.sendTo(fd, buffer, address), timeout: timeout)
    }

    /// Arms a multishot message receive on `fd` that takes buffers from this loop's receive
    /// buffers; each completion carries one datagram in one buffer (read it with
    /// `layout.message(in:)`) and goes to `handler`. `layout` must stay alive until the
    /// operation's final completion. Returns nil when the loop is stopping.
    func startReceivingMessages(
        _ fd: CInt, layout: MessageLayout, handledBy handler: any CompletionHandler
    ) -> OperationID? {
        submit(.receiveMessages(fd, header: layout.header), handledBy: handler)
    }

    /// The bytes of receive buffer `id` a completion filled (`count` of them), for
    /// `MessageLayout.message(in:)`. Loop thread only.
    func receivedBuffer(_ id: UInt16, count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: receiveBufferAddress(id), count: min(max(0, count), configuration.receiveBufferSize))
    }

    /// The most payload bytes one datagram can bring in a receive buffer of this loop; larger
    /// datagrams arrive truncated.
    /// Callable from any thread.
    var maximumDatagramReceiveSize: Int {
        configuration.receiveBufferSize - MessageLayout.overhead
    }
}
