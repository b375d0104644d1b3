import CURing
#if canImport(Glibc)
import Glibc
#endif

// The datagram operations the engine offers to `Sockets/`, in POSIX terms like those in
// EventLoop+Operations.swift: a send to an address (`sendmsg` with a name), and a multishot
// receive whose completions are read back through `MessageLayout` (which alone knows how
// io_uring lays a message out in a provided buffer).

extension EventLoop {
    /// Sends `buffer` as one datagram to the address in `address` (`length` bytes). The result
    /// is the number of bytes sent, or `-errno`. Never raises SIGPIPE.
    func send(
        _ fd: CInt, _ buffer: UnsafeRawBufferPointer, to address: sockaddr_storage, length: socklen_t,
        timeout: Duration?,
        isolation: isolated (any Actor)? = #isolation
    ) async -> Completion {
        let bytes = MemoryLayout<sockaddr_storage>.stride + MemoryLayout<msghdr>.stride + MemoryLayout<iovec>.stride + 32
        return await submit(timeout: timeout, arenaBytes: bytes) { sqe, arena in
            // The kernel copies the header, the name and the vector when it takes the request;
            // only the payload must outlive the call, and the caller keeps it.
            let name = arena.allocate(sockaddr_storage.self)
            name.pointee = address
            let vector = arena.allocate(iovec.self)
            vector.pointee = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), iov_len: buffer.count)
            let message = arena.allocate(msghdr.self)
            message.pointee = msghdr()
            message.pointee.msg_name = UnsafeMutableRawPointer(name)
            message.pointee.msg_namelen = length
            message.pointee.msg_iov = vector
            message.pointee.msg_iovlen = 1
            io_uring_prep_sendmsg(sqe, fd, message, UInt32(MSG_NOSIGNAL))
        }
    }

    /// Arms a multishot message receive on `fd` that takes buffers from this loop's ring; each
    /// completion carries one datagram in one buffer (read it with `layout.message(in:)`) and
    /// goes to `handler`. `layout` must stay alive until the request's final completion.
    /// Returns nil when the loop is stopping.
    func startReceivingMessages(
        _ fd: CInt, layout: borrowing MessageLayout, handledBy handler: any CompletionHandler
    ) -> OperationID? {
        let group = receiveBuffers.group
        let header = layout.header
        return submit(handledBy: handler) { sqe, _ in
            // MSG_TRUNC: the completion reports a datagram's full length even when it did not
            // fit, so that the caller can say by how much.
            io_uring_prep_recvmsg_multishot(sqe, fd, header, UInt32(MSG_TRUNC))
            torus_sqe_select_buffer(sqe, group)
        }
    }

    /// The bytes of receive buffer `id` a completion filled (`count` of them), for
    /// `MessageLayout.message(in:)`. Loop thread only.
    func receivedBuffer(_ id: UInt16, count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: receiveBufferAddress(id), count: min(max(0, count), receiveBuffers.bufferSize))
    }

    /// The most payload bytes one datagram can bring in a receive buffer of this loop; larger
    /// datagrams arrive truncated.
    /// Callable from any thread.
    var maximumDatagramReceiveSize: Int {
        configuration.receiveBufferSize - MessageLayout.overhead
    }
}
