/// Bytes a connection or datagram socket received, still in the event loop's receive buffer
/// the kernel wrote them to: no copy was made.
///
/// The value owns that buffer. Dropping or consuming it gives the buffer back to the kernel
/// for the next receive, so keep it only as long as you need the bytes; a connection that
/// holds many unconsumed buffers stops receiving until it gives some back.
///
/// ```swift
/// try await connection.withIsolation { connection in
///     while let bytes = try await connection.receive() {
///         try await bytes.withUnsafeBytes { try await connection.write($0) }  // echo, zero copy
///     }
/// }
/// ```
///
/// The pointer `withUnsafeBytes` passes is not `Sendable`: hand it only to calls isolated
/// like the caller, as inside ``Connection/withIsolation(_:)``. From elsewhere, pass the
/// value itself (``Connection/write(_:timeout:)-(ReceivedBytes,_)``,
/// ``Connection/send(_:)-(ReceivedBytes)``).
public struct ReceivedBytes: ~Copyable, @unchecked Sendable {
    // @unchecked Sendable: the value only reads its immutable buffer; giving the buffer back
    // goes through `owner.returnBuffer`, which hops to the owner's event loop when called
    // from another thread.
    private let owner: any ReceiveBufferOwner
    private let bufferID: UInt16
    private let start: UnsafeRawPointer
    /// The number of bytes.
    public let count: Int
    /// Set when the buffer was handed on with `handOver()`: the new holder gives it back.
    private var isHandedOver = false

    init(owner: any ReceiveBufferOwner, bufferID: UInt16, start: UnsafeRawPointer, count: Int) {
        self.owner = owner
        self.bufferID = bufferID
        self.start = start
        self.count = count
    }

    /// Bytes of their own (a copy of `bytes`), not in a receive buffer: for code that
    /// produces bytes for a ``ByteStream`` (a TLS stream's plaintext, a test double), or
    /// queues owned bytes where received bytes are expected.
    public init(copying bytes: UnsafeRawBufferPointer) {
        let block = CopiedBytes.make(copying: bytes)
        self.init(owner: block, bufferID: 0, start: block.start, count: bytes.count)
    }

    /// Bytes of their own, a copy of `bytes`. See ``init(copying:)``.
    public init(_ bytes: some Sequence<UInt8>) {
        let copied = bytes.withContiguousStorageIfAvailable { CopiedBytes.make(copying: UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { CopiedBytes.make(copying: $0) }
        self.init(owner: copied, bufferID: 0, start: copied.start, count: copied.count)
    }

    init(block: CopiedBytes, offset: Int, count: Int) {
        self.init(owner: block, bufferID: 0, start: block.start + offset, count: count)
    }

    deinit {
        if !isHandedOver { owner.returnBuffer(bufferID) }
    }

    /// Hands the buffer to a holder that gives it back later (a queued send), with no copy.
    consuming func handOver() -> LentBytes {
        let lent = LentBytes(owner: owner, bufferID: bufferID, start: start, count: count)
        isHandedOver = true
        return lent
    }

    /// Whether these are bytes of their own, not one of a loop's receive buffers.
    var isOwned: Bool { owner is CopiedBytes }

    /// The bytes, for code in this module that keeps the value alive while it uses them.
    var unsafeBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: count) }

    /// The same buffer without its first `count` bytes, with no copy.
    consuming func droppingFirst(_ count: Int) -> ReceivedBytes {
        let lent = handOver()
        let dropped = min(count, lent.count)
        return ReceivedBytes(owner: lent.owner, bufferID: lent.bufferID, start: lent.start + dropped, count: lent.count - dropped)
    }

    /// Calls `body` with the bytes. The pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// Calls `body` with the bytes. The pointer is valid only until `body` returns.
    public func withUnsafeBytes<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (UnsafeRawBufferPointer) async throws -> Result
    ) async rethrows -> Result {
        try await body(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// A copy of the bytes in an array.
    public var array: [UInt8] {
        Array(UnsafeRawBufferPointer(start: start, count: count))
    }
}

/// A received buffer taken out of its ``ReceivedBytes``: the holder must call `giveBack()`
/// exactly once.
struct LentBytes {
    let owner: any ReceiveBufferOwner
    let bufferID: UInt16
    let start: UnsafeRawPointer
    let count: Int

    func giveBack() { owner.returnBuffer(bufferID) }

    /// Whether these are bytes of their own, not one of a loop's receive buffers.
    var isOwned: Bool { owner is CopiedBytes }
}

/// Whoever lent a receive buffer and takes it back.
protocol ReceiveBufferOwner: AnyObject, Sendable {
    /// Takes buffer `id` back. Callable from any thread.
    func returnBuffer(_ id: UInt16)
}
