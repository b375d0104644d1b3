import CURing
#if canImport(Glibc)
import Glibc
#endif

// The io_uring form of every operation: the one place where an `IOOperation` becomes a
// submission queue entry.

extension IOOperation {
    /// Arena bytes ``prepare(_:arena:bufferGroup:)`` takes for what the kernel reads at
    /// submission (addresses, message headers, vectors, timespecs).
    var arenaBytes: Int {
        switch self {
        case .connect:
            SubmissionArena.footprint(of: sockaddr_storage.self)
        case .sendVectors(_, let vectors):
            SubmissionArena.footprint(of: msghdr.self) + SubmissionArena.footprint(of: iovec.self, count: vectors.count)
        case .sendTo:
            SubmissionArena.footprint(of: sockaddr_storage.self) + SubmissionArena.footprint(of: msghdr.self)
                + SubmissionArena.footprint(of: iovec.self)
        case .timer:
            SubmissionArena.footprint(of: __kernel_timespec.self)
        case .nop, .accept, .receive, .receiveIntoBuffers, .receiveMessages, .send, .close, .cancelAll:
            0
        }
    }

    /// Fills `sqe` for this operation. Data the kernel reads at submission is copied into
    /// `arena`; receives into the loop's buffers take them from `bufferGroup`.
    func prepare(_ sqe: UnsafeMutablePointer<io_uring_sqe>, arena: inout SubmissionArena, bufferGroup: UInt16) {
        switch self {
        case .nop:
            io_uring_prep_nop(sqe)
        case .connect(let fd, let address):
            let stable = arena.allocate(sockaddr_storage.self)
            stable.pointee = address.address
            stable.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                io_uring_prep_connect(sqe, fd, pointer, address.length)
            }
        case .accept(let fd):
            io_uring_prep_multishot_accept(sqe, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        case .receive(let fd, let buffer):
            io_uring_prep_recv(sqe, fd, buffer.baseAddress, buffer.count, 0)
        case .receiveIntoBuffers(let fd):
            io_uring_prep_recv_multishot(sqe, fd, nil, 0, 0)
            torus_sqe_select_buffer(sqe, bufferGroup)
        case .receiveMessages(let fd, let header):
            // MSG_TRUNC: the completion reports a datagram's full length even when it did not
            // fit, so that the caller can say by how much.
            io_uring_prep_recvmsg_multishot(sqe, fd, header, UInt32(MSG_TRUNC))
            torus_sqe_select_buffer(sqe, bufferGroup)
        case .send(let fd, let buffer):
            io_uring_prep_send(sqe, fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        case .sendVectors(let fd, let vectors):
            // The kernel copies the header and the vectors when it takes the request, so the
            // caller's vectors may change once submitted.
            let stableVectors = arena.allocate(iovec.self, count: vectors.count)
            stableVectors.update(from: vectors.baseAddress!, count: vectors.count)
            let message = arena.allocate(msghdr.self)
            message.pointee = msghdr()
            message.pointee.msg_iov = stableVectors
            message.pointee.msg_iovlen = vectors.count
            io_uring_prep_sendmsg(sqe, fd, message, UInt32(MSG_NOSIGNAL))
        case .sendTo(let fd, let buffer, let address):
            // Only the payload must outlive the call, and the caller keeps it.
            let name = arena.allocate(sockaddr_storage.self)
            name.pointee = address.address
            let vector = arena.allocate(iovec.self)
            vector.pointee = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), iov_len: buffer.count)
            let message = arena.allocate(msghdr.self)
            message.pointee = msghdr()
            message.pointee.msg_name = UnsafeMutableRawPointer(name)
            message.pointee.msg_namelen = address.length
            message.pointee.msg_iov = vector
            message.pointee.msg_iovlen = 1
            io_uring_prep_sendmsg(sqe, fd, message, UInt32(MSG_NOSIGNAL))
        case .close(let fd):
            io_uring_prep_close(sqe, fd)
        case .timer(let duration):
            let timespec = arena.allocate(__kernel_timespec.self)
            timespec.pointee = __kernel_timespec(duration)
            io_uring_prep_timeout(sqe, timespec, 0, 0)
        case .cancelAll(let fd):
            io_uring_prep_cancel_fd(sqe, fd, UInt32(IORING_ASYNC_CANCEL_ALL))
        }
    }
}

extension Completion {
    /// The completion a CQE carries, its `IORING_CQE_F_*` bits translated.
    init(_ cqe: io_uring_cqe) {
        var flags: CompletionFlags = []
        if cqe.flags & UInt32(IORING_CQE_F_MORE) != 0 { flags.insert(.more) }
        if cqe.flags & UInt32(IORING_CQE_F_BUFFER) != 0 { flags.insert(.buffer) }
        self.init(result: cqe.res, flags: flags, bufferIndex: UInt16(truncatingIfNeeded: cqe.flags >> IORING_CQE_BUFFER_SHIFT))
    }
}

extension __kernel_timespec {
    /// A relative timespec for `duration`; negative durations become zero.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            self.init(tv_sec: 0, tv_nsec: 0)
        } else {
            self.init(tv_sec: seconds, tv_nsec: attoseconds / 1_000_000_000)
        }
    }
}
