/// Appends RESP2 replies to a byte array, formatting numbers without making strings.
public struct RESPEncoder: Sendable {
    /// The encoded replies so far.
    public var bytes: [UInt8] = []

    /// An empty encoder.
    public init() {}

    /// Forgets the replies, keeping the capacity.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// `+text\r\n`
    public mutating func simpleString(_ text: StaticString) {
        bytes.append(UInt8(ascii: "+"))
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        crlf()
    }

    /// `-message\r\n` (newlines in `message` become spaces, which RESP requires).
    public mutating func error(_ message: String) {
        bytes.append(UInt8(ascii: "-"))
        bytes.append(contentsOf: message.utf8.map { $0 == 0x0D || $0 == 0x0A ? UInt8(ascii: " ") : $0 })
        crlf()
    }

    /// `:n\r\n`
    public mutating func integer(_ value: Int) {
        bytes.append(UInt8(ascii: ":"))
        decimal(value)
        crlf()
    }

    /// `$n\r\n...\r\n`, or the null bulk string `$-1\r\n` for nil.
    public mutating func bulk(_ value: (some Collection<UInt8>)?) {
        guard let value else {
            nullBulk()
            return
        }
        bytes.append(UInt8(ascii: "$"))
        decimal(value.count)
        crlf()
        bytes.append(contentsOf: value)
        crlf()
    }

    /// The null bulk string, `$-1\r\n`.
    public mutating func nullBulk() {
        bytes.append(contentsOf: "$-1\r\n".utf8)
    }

    /// `*n\r\n`; the `n` elements follow.
    public mutating func arrayHeader(_ count: Int) {
        bytes.append(UInt8(ascii: "*"))
        decimal(count)
        crlf()
    }

    private mutating func crlf() {
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    private mutating func decimal(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { digits in
            repeat {
                digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(digits[index]) }
        }
    }
}
