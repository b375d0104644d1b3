#if canImport(Glibc)
import Glibc
#endif

/// Bytes queued for a non-blocking socket (a TLS connection's ciphertext, or plaintext
/// garbage), sent in order as the socket takes them. An optional cap stops sending at a total
/// count (a handshake cut at that byte); what lies beyond it is never sent.
struct OutgoingBytes {
    /// How a flush ended.
    enum Flush {
        /// Everything queued (up to the cap) went out.
        case done
        /// The socket is full: wait for POLLOUT.
        case blocked
        /// `send` failed with this errno (`ECONNRESET`, `EPIPE`: the peer is gone).
        case failed(Int32)
    }

    private var bytes: [UInt8] = []
    private var start = 0
    /// Bytes handed to the kernel so far, over the connection's life.
    private(set) var sentTotal = 0
    /// Bytes ever queued.
    private(set) var queuedTotal = 0
    /// Send no more than this many bytes in all.
    var cap: Int?

    /// Queued and not yet sent (including any beyond the cap).
    var count: Int { bytes.count - start }

    /// Whether something is queued that may still be sent.
    var hasSendable: Bool { count > 0 && (cap.map { sentTotal < $0 } ?? true) }

    /// Whether the cap is set and reached.
    var capReached: Bool { cap.map { sentTotal >= $0 } ?? false }

    mutating func append(_ buffer: UnsafeRawBufferPointer) {
        if start > 0, start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            start = 0
        }
        bytes.append(contentsOf: buffer)
        queuedTotal += buffer.count
    }

    /// Sends what the socket takes.
    mutating func flush(to fd: Int32) -> Flush {
        while hasSendable {
            var length = count
            if let cap { length = min(length, cap - sentTotal) }
            let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + start, length, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if written > 0 {
                start += written
                sentTotal += written
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return .blocked
            case EINTR: continue
            default: return .failed(errno)
            }
        }
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: bytes.capacity <= 256 * 1024)
            start = 0
        }
        return .done
    }
}
