import Torus

/// The chat's framing: lines ended by `\n` or `\r\n` (without it), and a line longer than
/// ``maxLength`` cut into pieces of that size instead of refused, so a client without
/// newlines is still heard.
struct ChatLineDecoder: FrameDecoder {
    /// The longest line (or piece of one).
    let maxLength: Int
    var maxFrameLength: Int { maxLength + 2 }

    mutating func decode(_ bytes: UnsafeRawBufferPointer) -> (frame: [UInt8], consumed: Int)? {
        let window = UnsafeRawBufferPointer(rebasing: bytes[..<min(bytes.count, maxLength + 2)])
        guard let newline = window.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= maxLength ? (Array(bytes[..<maxLength]), maxLength) : nil
        }
        let end = newline > 0 && bytes[newline - 1] == UInt8(ascii: "\r") ? newline - 1 : newline
        guard end <= maxLength else { return (Array(bytes[..<maxLength]), maxLength) }
        return (Array(bytes[..<end]), newline + 1)
    }
}
