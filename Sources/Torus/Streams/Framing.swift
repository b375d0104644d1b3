#if canImport(Glibc)
import Glibc
#endif

/// How a byte stream is cut into frames: lines, a delimiter, a length prefix, or a fixed
/// size, each with a limit on the frame's length.
///
/// A ``BufferedReader`` reads frames by a framing, copying them
/// (``BufferedReader/readFrame(_:timeout:isolation:)``) or lending them with no copy
/// (``BufferedReader/withNextFrame(_:timeout:isolation:_:)``):
///
/// ```swift
/// let reader = BufferedReader(connection)
/// while let message = try await reader.readFrame(.lengthPrefixed(width: 4, maxLength: 1 << 20)) {
///     try await handle(message)
/// }
/// ```
///
/// A frame longer than its limit fails the read with ``TorusError/Kind/frameTooLong`` as soon
/// as that is known (for a length prefix, from the prefix alone): a reader never buffers more
/// than the limit and one receive's bytes.
public struct Framing: Sendable, Hashable {
    enum Rule: Sendable, Hashable {
        case line
        case delimiter([UInt8], keepsDelimiter: Bool)
        case lengthPrefix(width: Int, bigEndian: Bool)
        case exactly(Int)
    }

    let rule: Rule
    /// The longest frame accepted, in bytes, not counting a line's terminator, a delimiter or
    /// a length prefix.
    public let maxLength: Int

    /// Lines ending in `\n` or `\r\n`; the frame is the line without its ending. At end of
    /// stream, bytes after the last line ending are one last line.
    public static func line(maxLength: Int = 64 * 1024) -> Framing {
        Framing(rule: .line, maxLength: max(0, maxLength))
    }

    /// Frames that end with `delimiter` (one or more bytes), which the frame includes when
    /// `keepingDelimiter` (as in ``BufferedReader/readUntil(_:maxLength:timeout:isolation:)-([UInt8],_,_,_)``).
    /// The stream ending after a partial frame fails the read with
    /// ``TorusError/Kind/truncatedFrame``.
    public static func delimited(by delimiter: [UInt8], keepingDelimiter: Bool = false, maxLength: Int = 64 * 1024) -> Framing {
        precondition(!delimiter.isEmpty, "a delimiter needs at least one byte")
        return Framing(rule: .delimiter(delimiter, keepsDelimiter: keepingDelimiter), maxLength: max(0, maxLength))
    }

    /// Frames preceded by their length, an unsigned integer of `width` bytes (1, 2, 4 or 8)
    /// in `byteOrder`, which does not count itself. The frame is the payload without the
    /// prefix. A stream ending inside a frame fails with ``TorusError/Kind/truncatedFrame``.
    public static func lengthPrefixed(width: Int, byteOrder: ByteOrder = .bigEndian, maxLength: Int) -> Framing {
        precondition([1, 2, 4, 8].contains(width), "a length prefix is 1, 2, 4 or 8 bytes wide")
        return Framing(rule: .lengthPrefix(width: width, bigEndian: byteOrder == .bigEndian), maxLength: max(0, maxLength))
    }

    /// Frames of exactly `count` bytes.
    public static func exactly(_ count: Int) -> Framing {
        precondition(count >= 0, "a frame cannot have a negative size")
        return Framing(rule: .exactly(count), maxLength: count)
    }

    /// The order of a length prefix's bytes.
    public enum ByteOrder: Sendable, Hashable {
        /// Most significant byte first ("network order").
        case bigEndian
        /// Least significant byte first.
        case littleEndian
    }

    /// Where the first frame in `bytes` lies: its payload and how many bytes it takes with
    /// its framing. Nil when `bytes` holds no whole frame yet; at end of stream (`atEnd`),
    /// a line's last unterminated bytes make a frame.
    func frame(in bytes: UnsafeRawBufferPointer, atEnd: Bool) throws(TorusError) -> (payload: Range<Int>, consumed: Int)? {
        switch rule {
        case .line:
            return try line(in: bytes, atEnd: atEnd)
        case .delimiter(let delimiter, let keeps):
            guard let end = Self.find(delimiter, in: bytes, within: maxLength + delimiter.count) else {
                if bytes.count >= maxLength + delimiter.count { throw tooLong("no delimiter in the first \(maxLength + delimiter.count) bytes") }
                return nil
            }
            return (0..<(keeps ? end + delimiter.count : end), end + delimiter.count)
        case .lengthPrefix(let width, let bigEndian):
            guard bytes.count >= width else { return nil }
            var length: UInt64 = 0
            for index in 0..<width {
                let byte = UInt64(bytes[bigEndian ? index : width - 1 - index])
                length = length << 8 | byte
            }
            guard length <= UInt64(maxLength) else { throw tooLong("the length prefix says \(length) bytes") }
            let total = width + Int(length)
            return bytes.count >= total ? (width..<total, total) : nil
        case .exactly(let count):
            return bytes.count >= count ? (0..<count, count) : nil
        }
    }

    private func line(in bytes: UnsafeRawBufferPointer, atEnd: Bool) throws(TorusError) -> (payload: Range<Int>, consumed: Int)? {
        // A line of maxLength bytes may take two more for its "\r\n".
        let window = min(bytes.count, maxLength + 2)
        guard let newline = Self.find([0x0A], in: bytes, within: window) else {
            if bytes.count > maxLength + 1 || (bytes.count == maxLength + 1 && bytes[maxLength] != 0x0D) {
                throw tooLong("no line ending in the first \(maxLength + 1) bytes")
            }
            if atEnd, bytes.count > 0 {
                let end = bytes[bytes.count - 1] == 0x0D ? bytes.count - 1 : bytes.count
                return (0..<end, bytes.count)
            }
            return nil
        }
        let end = newline > 0 && bytes[newline - 1] == 0x0D ? newline - 1 : newline
        if end > maxLength { throw tooLong("a line of \(end) bytes") }
        return (0..<end, newline + 1)
    }

    /// The offset of the first `needle` that ends within the first `limit` bytes.
    static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, within limit: Int) -> Int? {
        let count = min(bytes.count, limit)
        guard let base = bytes.baseAddress, count >= needle.count else { return nil }
        let first = Int32(needle[0])
        var offset = 0
        while offset + needle.count <= count {
            guard let hit = memchr(base + offset, first, count - offset - needle.count + 1) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(hit))
            if needle.count == 1 || needle.withUnsafeBytes({ memcmp(base + at, $0.baseAddress!, needle.count) == 0 }) {
                return at
            }
            offset = at + 1
        }
        return nil
    }

    private func tooLong(_ what: String) -> TorusError {
        TorusError(.frameTooLong, operation: .read, detail: "\(what); the limit is \(maxLength)")
    }
}
