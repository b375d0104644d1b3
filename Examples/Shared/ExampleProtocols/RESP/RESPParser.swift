/// An incremental parser of client commands in RESP2: arrays of bulk strings
/// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), and inline commands (`GET k\r\n`, as typed into
/// `nc`). Feed it bytes with ``append(_:)``, then call ``next()`` until it returns nil.
///
/// A command split at any byte boundary parses the same as in one piece. A frame that has
/// not all arrived is not re-parsed from its start: the parser keeps the offsets of the
/// arguments found so far (relative to the frame's first byte, so they survive the
/// accumulator moving its bytes). Memory is bounded by the limits: a bulk string at most
/// `maxBulkLength` (512 MiB by default, as Redis), an array at most 1,048,576 elements, an
/// inline command or a length line at most 64 KiB.
public struct RESPParser: Sendable {
    /// The longest bulk string accepted.
    public let maxBulkLength: Int
    /// The most elements in one command array.
    public static let maxArrayCount = 1024 * 1024
    /// The longest inline command.
    public static let maxInlineLength = 64 * 1024

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    private var buffer = ByteAccumulator()
    private var failure: RESPParseError?
    /// The frame in progress: how many elements it declared (nil: between frames).
    private var expectedCount: Int?
    /// The elements found so far, as offsets from the frame's first byte.
    private var elements: [Range<Int>] = []
    /// Where parsing resumes, as an offset from the frame's first byte.
    private var cursor = 0
    /// The declared length of the bulk string whose `$` line was read, if its data has not
    /// all arrived.
    private var pendingBulkLength: Int?

    /// A parser refusing bulk strings longer than `maxBulkLength` bytes.
    public init(maxBulkLength: Int = 512 * 1024 * 1024) {
        self.maxBulkLength = maxBulkLength
    }

    /// Bytes received but not parsed yet.
    public var bufferedCount: Int { buffer.readableCount }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(bytes) }

    /// Adds received bytes.
    public mutating func append(_ bytes: some Collection<UInt8>) { buffer.append(bytes) }

    /// The next complete command, or nil when more bytes are needed.
    ///
    /// - Throws: ``RESPParseError``. A fatal one is thrown again by every later call; after
    ///   a non-fatal one, parsing goes on with the next command.
    public mutating func next() throws(RESPParseError) -> RESPCommand? {
        if let failure { throw failure }
        do {
            while true {
                if expectedCount == nil {
                    guard buffer.readableCount > 0 else { return nil }
                    if buffer.storage[buffer.readIndex] == UInt8(ascii: "*") {
                        guard try startArray() else { return nil }
                        continue
                    }
                    guard let command = try nextInline() else { return nil }
                    if command.arguments.isEmpty { continue }  // Empty lines are ignored.
                    return command
                }
                return try continueArray()
            }
        } catch {
            if error.isFatal { failure = error }
            throw error
        }
    }

    // MARK: Arrays

    /// Reads `*N\r\n`; false if the line has not all arrived.
    private mutating func startArray() throws(RESPParseError) -> Bool {
        guard let (count, length) = try lengthLine(at: 0, invalid: .invalidMultibulkLength) else { return false }
        guard count <= Self.maxArrayCount else { throw .invalidMultibulkLength }
        if count <= 0 {
            buffer.consume(length)  // `*0` and `*-1` carry no command: skip them, as Redis does.
            return true
        }
        expectedCount = count
        elements.removeAll(keepingCapacity: true)
        cursor = length
        return true
    }

    private mutating func continueArray() throws(RESPParseError) -> RESPCommand? {
        let expected = expectedCount!
        while elements.count < expected {
            if pendingBulkLength == nil {
                let start = buffer.readIndex + cursor
                guard start < buffer.storage.count else { return nil }
                let marker = buffer.storage[start]
                guard marker == UInt8(ascii: "$") else { throw .expectedBulk(found: marker) }
                guard let (length, lineLength) = try lengthLine(at: cursor, invalid: .invalidBulkLength) else { return nil }
                guard length >= 0 else { throw .invalidBulkLength }
                guard length <= maxBulkLength else { throw .bulkTooLarge(limit: maxBulkLength) }
                pendingBulkLength = length
                cursor += lineLength
            }
            let length = pendingBulkLength!
            guard buffer.readableCount - cursor >= length + 2 else { return nil }
            let dataEnd = buffer.readIndex + cursor + length
            guard buffer.storage[dataEnd] == Self.cr, buffer.storage[dataEnd + 1] == Self.lf else {
                throw .missingBulkTerminator
            }
            elements.append(cursor..<(cursor + length))
            cursor += length + 2
            pendingBulkLength = nil
        }
        let base = buffer.readIndex
        let storage = buffer.storage
        let command = RESPCommand(elements.map { storage[($0.lowerBound + base)..<($0.upperBound + base)] })
        buffer.consume(cursor)
        expectedCount = nil
        cursor = 0
        return command
    }

    /// Parses a `*N` or `$N` line starting `offset` bytes into the frame: the number and the
    /// line's length with its CRLF; nil if it has not all arrived.
    private func lengthLine(at offset: Int, invalid: RESPParseError) throws(RESPParseError) -> (Int, Int)? {
        let start = buffer.readIndex + offset
        guard let lf = buffer.firstIndex(of: Self.lf, from: start) else {
            if buffer.storage.count - start > Self.maxInlineLength { throw .lineTooLong }
            return nil
        }
        guard lf - start <= Self.maxInlineLength else { throw .lineTooLong }
        guard lf - start >= 3, buffer.storage[lf - 1] == Self.cr else { throw invalid }
        var digits = buffer.storage[(start + 1)..<(lf - 1)]
        var negative = false
        if digits.first == UInt8(ascii: "-") {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.count <= 18 else { throw invalid }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { throw invalid }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return (negative ? -value : value, lf + 1 - start)
    }

    // MARK: Inline commands

    private mutating func nextInline() throws(RESPParseError) -> RESPCommand? {
        let start = buffer.readIndex
        guard let lf = buffer.firstIndex(of: Self.lf, from: start) else {
            if buffer.readableCount > Self.maxInlineLength { throw .lineTooLong }
            return nil
        }
        guard lf - start <= Self.maxInlineLength else { throw .lineTooLong }
        var end = lf
        if end > start, buffer.storage[end - 1] == Self.cr { end -= 1 }
        buffer.consume(lf + 1 - start)
        guard let arguments = RESPInlineSplitter.split(buffer.storage[start..<end]) else { throw .unbalancedQuotes }
        return RESPCommand(arguments)
    }
}
