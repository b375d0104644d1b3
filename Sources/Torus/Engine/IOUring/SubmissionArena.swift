/// Scratch memory for the parts of a request the kernel reads at submission time: socket
/// addresses, `msghdr`s, `iovec`s and timespecs.
///
/// With `IORING_FEAT_SUBMIT_STABLE` (every kernel Torus supports) the kernel has copied these
/// once `io_uring_enter` has consumed the request, so the loop resets the arena after each
/// submit instead of allocating per operation. Data buffers are not placed here: they must
/// stay alive until the completion, and their owners keep them.
struct SubmissionArena: ~Copyable {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var used = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    func canFit(_ byteCount: Int) -> Bool { used + byteCount <= capacity }

    /// The most bytes ``allocate(_:count:)`` can take for `count` values of `T`, alignment
    /// padding included: what an operation adds up to say how much arena it needs.
    static func footprint<T>(of type: T.Type, count: Int = 1) -> Int {
        MemoryLayout<T>.stride * count + max(MemoryLayout<T>.alignment, 8) - 1
    }

    /// Memory for `count` values of `T`, valid until the next `reset()`.
    mutating func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let alignment = max(MemoryLayout<T>.alignment, 8)
        let start = (used + alignment - 1) & ~(alignment - 1)
        let size = MemoryLayout<T>.stride * count
        precondition(start + size <= capacity, "submission arena overflow: reserve space first")
        used = start + size
        return (base + start).bindMemory(to: T.self, capacity: count)
    }

    mutating func reset() { used = 0 }
}
