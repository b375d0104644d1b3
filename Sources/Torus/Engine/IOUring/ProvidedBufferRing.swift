import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The receive buffers of one event loop, lent to the kernel through a registered
/// provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19+).
///
/// A multishot receive asks for "a buffer from group N"; the kernel takes the next one from
/// the ring, fills it and names it in the completion. The loop gives a buffer back (to the
/// ring's tail) once its bytes have been consumed. The buffer memory is one anonymous mapping,
/// so pages are only committed once the kernel first writes to them.
struct ProvidedBufferRing: ~Copyable {
    /// The buffer group id requests name.
    let group: UInt16
    /// Bytes per buffer.
    let bufferSize: Int
    /// Number of buffers (a power of two).
    let count: Int
    private let entries: UnsafeMutablePointer<io_uring_buf_ring>
    private let memory: UnsafeMutableRawPointer

    /// Maps the buffers and registers the ring with `ring`.
    init(registeringWith ring: borrowing Ring, group: UInt16, count: Int, bufferSize: Int) throws(TorusError) {
        precondition(count > 0 && count & (count - 1) == 0 && count <= 32768, "buffer count must be a power of two up to 32768")
        let memory = mmap(nil, count * bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else {
            throw TorusError(.system, operation: .ringSetup, errno: errno, detail: "could not map \(count) receive buffers")
        }
        let entries = try ring.registerBufferRing(entries: UInt32(count), group: group)
        self.group = group
        self.bufferSize = bufferSize
        self.count = count
        self.entries = entries
        self.memory = memory
        for id in 0..<count {
            torus_buf_ring_add(entries, memory + id * bufferSize, UInt32(bufferSize), UInt16(id), UInt32(count), Int32(id))
        }
        torus_buf_ring_advance(entries, Int32(count))
    }

    /// Unmaps the buffers. Only after the ring is closed: until then the kernel may write.
    deinit {
        munmap(UnsafeMutableRawPointer(entries), count * MemoryLayout<io_uring_buf>.stride)
        munmap(memory, count * bufferSize)
    }

    /// Where buffer `id` starts.
    func address(of id: UInt16) -> UnsafeMutableRawPointer {
        memory + Int(id) * bufferSize
    }

    /// Gives buffer `id` back to the kernel.
    func recycle(_ id: UInt16) {
        torus_buf_ring_add(entries, address(of: id), UInt32(bufferSize), id, UInt32(count), 0)
        torus_buf_ring_advance(entries, 1)
    }
}
