/// Bytes held in memory of their own rather than in an event loop's receive buffer: bytes
/// copied out of a receive buffer (a socket past its share, a frame assembled from several
/// receives) and owned bytes queued for sending.
final class CopiedBytes: ReceiveBufferOwner, @unchecked Sendable {
    // @unchecked Sendable: the bytes are written once, by `make`, before the object is shared,
    // and only read afterwards. (Not a `ManagedBuffer`, which would save an allocation: it is
    // explicitly not Sendable, even in a subclass.)

    /// The first byte; valid while the object lives.
    let start: UnsafeRawPointer
    /// The number of bytes.
    let count: Int

    private init(count: Int, _ initialize: (UnsafeMutableRawBufferPointer) -> Void) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, count), alignment: 16)
        initialize(UnsafeMutableRawBufferPointer(start: memory, count: count))
        self.start = UnsafeRawPointer(memory)
        self.count = count
    }

    deinit { start.deallocate() }

    /// A new block holding a copy of `bytes`.
    static func make(copying bytes: UnsafeRawBufferPointer) -> CopiedBytes {
        CopiedBytes(count: bytes.count) { memory in
            if let source = bytes.baseAddress, bytes.count > 0 {
                memory.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
            }
        }
    }

    /// A new block of `count` bytes that `initialize` fills in, all of them, before anyone
    /// else sees the block.
    static func make(count: Int, _ initialize: (UnsafeMutableRawBufferPointer) -> Void) -> CopiedBytes {
        CopiedBytes(count: count, initialize)
    }

    /// Nothing to give back: the memory goes with the last reference.
    func returnBuffer(_ id: UInt16) {}
}
