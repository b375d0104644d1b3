/// A framing of your own: turns the bytes at the front of a stream into frames of your type,
/// one at a time, like SwiftNIO's `ByteToMessageDecoder` but called by an async reader.
///
/// ```swift
/// /// "+OK\r\n"-style replies: a type byte, then a line.
/// struct ReplyDecoder: FrameDecoder {
///     let maxFrameLength = 1024
///     mutating func decode(_ bytes: UnsafeRawBufferPointer) throws -> (frame: Reply, consumed: Int)? {
///         guard let end = bytes.firstIndex(of: 0x0A) else { return nil }   // need more bytes
///         return (Reply(bytes[..<end]), end + 1)
///     }
/// }
///
/// for try await reply in BufferedReader(connection).frames(using: ReplyDecoder()) { … }
/// ```
///
/// The reader calls ``decode(_:)`` with every byte it holds unread (from a single receive
/// when it can, with no copy), and again after more bytes arrive while it returns nil. When
/// the reader holds more than ``maxFrameLength`` bytes and `decode` still needs more, the
/// read fails with ``TorusError/Kind/frameTooLong``: memory stays bounded whatever the peer
/// sends.
public protocol FrameDecoder {
    /// What one frame decodes to.
    associatedtype Frame

    /// The most bytes one frame may take, framing included.
    var maxFrameLength: Int { get }

    /// Decodes the first frame in `bytes`: the frame and how many bytes it took (at least
    /// 1), or nil when `bytes` holds no whole frame yet. Throw (for example
    /// ``TorusError/Kind/malformedFrame``) for bytes that can never make a frame. `bytes` is
    /// valid only during the call: copy what the frame keeps.
    mutating func decode(_ bytes: UnsafeRawBufferPointer) throws -> (frame: Frame, consumed: Int)?

    /// Called at end of stream with the bytes left (never empty) when ``decode(_:)`` found
    /// no frame in them: a last frame, or nil to fail the read with
    /// ``TorusError/Kind/truncatedFrame``. By default, nil.
    mutating func decodeLast(_ bytes: UnsafeRawBufferPointer) throws -> (frame: Frame, consumed: Int)?
}

extension FrameDecoder {
    /// By default the stream may not end inside a frame.
    public mutating func decodeLast(_ bytes: UnsafeRawBufferPointer) throws -> (frame: Frame, consumed: Int)? {
        nil
    }
}
