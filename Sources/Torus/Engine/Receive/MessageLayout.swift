import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The `msghdr` a multishot message receive is armed with, and how each provided buffer it
/// fills is laid out: a `struct io_uring_recvmsg_out`, then the sender's address (room for a
/// `sockaddr_in6`), then the payload.
///
/// The kernel reads the header when the request is armed (and again when it is re-armed
/// internally), so it lives in its own allocation for as long as its owner, not in the
/// submission arena.
final class MessageLayout {
    /// One received datagram, as found in a buffer.
    struct Message {
        /// Who sent it; nil if the kernel gave no address.
        var sender: SocketAddress?
        /// Where the payload starts in the buffer.
        var payloadOffset: Int
        /// Payload bytes in the buffer.
        var count: Int
        /// The datagram's full length; more than `count` when it was truncated.
        var originalCount: Int
        /// The datagram did not fit the buffer (`MSG_TRUNC`).
        var isTruncated: Bool
    }

    /// Room reserved for the sender's address.
    static let nameCapacity = MemoryLayout<sockaddr_in6>.size
    /// Buffer bytes that are not payload.
    static let overhead = MemoryLayout<io_uring_recvmsg_out>.size + nameCapacity

    let header: UnsafeMutablePointer<msghdr>

    init() {
        header = .allocate(capacity: 1)
        header.initialize(to: msghdr())
        header.pointee.msg_namelen = socklen_t(Self.nameCapacity)
    }

    deinit { header.deallocate() }

    /// Reads the datagram in `buffer` (the bytes a completion said it filled); nil if the
    /// buffer is too short to hold one.
    func message(in buffer: UnsafeRawBufferPointer) -> Message? {
        guard let base = buffer.baseAddress, buffer.count >= Self.overhead else { return nil }
        let out = buffer.loadUnaligned(as: io_uring_recvmsg_out.self)
        var sender: SocketAddress?
        let nameLength = min(Int(out.namelen), Self.nameCapacity)
        if nameLength >= MemoryLayout<sa_family_t>.size {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: base + MemoryLayout<io_uring_recvmsg_out>.size, count: nameLength))
            }
            sender = SocketAddress(storage, length: socklen_t(nameLength))
        }
        let payloadOffset = Self.overhead + Int(header.pointee.msg_controllen)
        let count = max(0, buffer.count - payloadOffset)
        let isTruncated = out.flags & UInt32(MSG_TRUNC) != 0
        return Message(
            sender: sender, payloadOffset: payloadOffset, count: count,
            originalCount: max(count, Int(out.payloadlen)), isTruncated: isTruncated)
    }
}
