#if canImport(Glibc)
import Glibc
#endif

/// The receive buffers of a loop that runs the epoll engine: the same shape as the io_uring
/// engine's provided-buffer ring (fixed-size buffers named by a 16-bit id), but handed out by
/// the engine itself when it receives on a ready socket.
///
/// The memory is one anonymous mapping, so pages are only committed once first written.
struct ReceiveBufferPool: ~Copyable {
    /// Bytes per buffer.
    let bufferSize: Int
    /// Number of buffers.
    let count: Int
    private let memory: UnsafeMutableRawPointer
    /// Ids of the buffers not lent out, used last-in first-out so that the warmest buffer goes
    /// out next.
    private var free: [UInt16]

    init(count: Int, bufferSize: Int) throws(TorusError) {
        precondition(count > 0 && count <= 32768, "buffer count must be between 1 and 32768")
        let memory = mmap(nil, count * bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else {
            throw TorusError(.system, operation: .eventLoopSetup, errno: errno, detail: "could not map \(count) receive buffers")
        }
        self.memory = memory
        self.bufferSize = bufferSize
        self.count = count
        free = (0..<count).reversed().map { UInt16($0) }
    }

    deinit { munmap(memory, count * bufferSize) }

    /// Where buffer `id` starts.
    func address(of id: UInt16) -> UnsafeMutableRawPointer {
        memory + Int(id) * bufferSize
    }

    /// Lends out a buffer; nil when every buffer is lent.
    mutating func take() -> UInt16? { free.popLast() }

    /// Takes buffer `id` back.
    mutating func recycle(_ id: UInt16) {
        assert(free.count < count, "buffer \(id) given back twice")
        free.append(id)
    }
}
