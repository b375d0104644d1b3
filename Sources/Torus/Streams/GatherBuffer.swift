/// A ``BufferedReader``'s own bytes: a frame that spans receives, gathered contiguously.
///
/// One allocation, grown to the largest frame gathered so far and then reused: bytes are
/// appended at the end and consumed from the front, and moved back to the start only when
/// the free space at the end runs out.
struct GatherBuffer: ~Copyable {
    private var memory: UnsafeMutableRawPointer?
    private var capacity = 0
    private var start = 0
    private var end = 0

    init() {}

    deinit { memory?.deallocate() }

    /// The number of bytes held.
    var count: Int { end - start }

    /// The bytes held; valid until the next change.
    var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: memory.map { UnsafeRawPointer($0) + start }, count: count)
    }

    /// Appends a copy of `bytes`.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if capacity - end < bytes.count { makeRoom(for: bytes.count) }
        (memory! + end).copyMemory(from: source, byteCount: bytes.count)
        end += bytes.count
    }

    /// Drops the first `count` bytes.
    mutating func removeFirst(_ count: Int) {
        start += min(count, self.count)
        if start == end { removeAll() }
    }

    /// Drops every byte, keeping the memory.
    mutating func removeAll() {
        start = 0
        end = 0
    }

    private mutating func makeRoom(for extra: Int) {
        let needed = count + extra
        if needed <= capacity, let memory {
            // Enough room in all: move the bytes back to the start.
            memory.copyMemory(from: memory + start, byteCount: count)
        } else {
            var newCapacity = max(capacity * 2, 4096)
            while newCapacity < needed { newCapacity *= 2 }
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            if let memory {
                bigger.copyMemory(from: memory + start, byteCount: count)
                memory.deallocate()
            }
            memory = bigger
            capacity = newCapacity
        }
        end = count
        start = 0
    }
}
