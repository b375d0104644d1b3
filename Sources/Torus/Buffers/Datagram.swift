/// A received datagram, copied out of the receive buffer: its payload, who sent it, and
/// whether it was truncated.
///
/// ``DatagramSocket/read(timeout:)`` and iterating a ``DatagramSocket`` produce these; the
/// zero-copy form is ``ReceivedDatagram``.
public struct Datagram: Sendable, Hashable {
    /// The payload.
    public var bytes: [UInt8]
    /// Who sent the datagram.
    public var sender: SocketAddress
    /// The datagram's full size; larger than `bytes.count` when it was truncated.
    public var originalCount: Int
    /// The datagram was larger than the receive buffer and only its first `bytes.count` bytes
    /// arrived (see ``DatagramSocket/maximumReceiveSize``).
    public var isTruncated: Bool

    /// A datagram with `bytes` from `sender`.
    ///
    /// - Parameters:
    ///   - bytes: The payload.
    ///   - sender: Who sent the datagram.
    ///   - originalCount: The datagram's full size; nil for `bytes.count`.
    ///   - isTruncated: Whether only the first `bytes.count` bytes arrived.
    public init(bytes: [UInt8], sender: SocketAddress, originalCount: Int? = nil, isTruncated: Bool = false) {
        self.bytes = bytes
        self.sender = sender
        self.originalCount = originalCount ?? bytes.count
        self.isTruncated = isTruncated
    }
}
