/// A datagram a ``DatagramSocket`` received, still in the event loop's receive buffer the
/// kernel wrote it to: no copy was made.
///
/// The value owns that buffer (through ``bytes``); dropping or consuming it gives the buffer
/// back for the next receive.
///
/// A datagram larger than a receive buffer arrives cut to what fit, with ``isTruncated`` set
/// and ``originalCount`` giving its full size: Torus never cuts a datagram silently, but it
/// does not drop it either, so that a server can answer "too large".
///
/// ```swift
/// try await socket.withIsolation { socket in
///     let datagram = try await socket.receive()
///     try await datagram.bytes.withUnsafeBytes { try await socket.send($0, to: datagram.sender) }
/// }
/// ```
public struct ReceivedDatagram: ~Copyable, Sendable {
    /// The payload.
    public let bytes: ReceivedBytes
    /// Who sent the datagram.
    public let sender: SocketAddress
    /// The datagram's full size; larger than `bytes.count` when it was truncated.
    public let originalCount: Int
    /// The datagram was larger than the receive buffer and only its first `bytes.count`
    /// bytes arrived (see ``DatagramSocket/maximumReceiveSize``).
    public let isTruncated: Bool

    init(bytes: consuming ReceivedBytes, sender: SocketAddress, originalCount: Int, isTruncated: Bool) {
        self.bytes = bytes
        self.sender = sender
        self.originalCount = originalCount
        self.isTruncated = isTruncated
    }

    /// The number of payload bytes received.
    public var count: Int { bytes.count }

    /// Calls `body` with the payload. The pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try bytes.withUnsafeBytes(body)
    }

    /// A copy of the datagram that owns no buffer (the buffer goes back when this value is
    /// dropped).
    public var datagram: Datagram {
        Datagram(bytes: bytes.array, sender: sender, originalCount: originalCount, isTruncated: isTruncated)
    }
}
