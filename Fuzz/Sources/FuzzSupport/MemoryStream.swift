public import Torus

/// A `ByteStream` that hands out the pieces it was given, one per receive, then the end.
public actor MemoryStream: ByteStream {
    private var pieces: [[UInt8]]

    /// A stream of `pieces`, in order.
    public init(_ pieces: [[UInt8]]) { self.pieces = pieces.reversed() }

    public func receive(timeout: Duration?) async throws -> ReceivedBytes? {
        guard let next = pieces.popLast() else { return nil }
        return ReceivedBytes(next)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?) async throws -> Int {
        guard !buffer.isEmpty, var next = pieces.popLast() else { return 0 }
        let count = min(next.count, buffer.count)
        buffer.copyBytes(from: next[..<count])
        next.removeFirst(count)
        if !next.isEmpty { pieces.append(next) }
        return count
    }

    public func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration?) async throws {}
    public func send(_ bytes: consuming ReceivedBytes) async throws {}
    public func flush() async throws {}
    public func shutdown(_ direction: ShutdownDirection) async throws {}
    public func close() async {}
}
