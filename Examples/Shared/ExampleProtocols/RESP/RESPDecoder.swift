public import Torus

/// Cuts a stream of RESP2 client commands into batches, for a ``BufferedReader``: arrays of
/// bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands (`GET k\r\n`, as
/// typed into `nc`). Each frame is a ``RESPBatch`` of every command complete in the bytes at
/// hand, so a server runs and answers what arrived together with one write:
///
/// ```swift
/// var decoder = RESPDecoder()
/// while let batch = try await reader.readFrame(using: &decoder) {
///     try await connection.write(run(batch))
/// }
/// ```
///
/// The bytes are parsed in place; the arguments are copied once, into the batch. A command
/// that has not all arrived is not re-parsed from its start: the decoder keeps the offsets
/// of the arguments found so far, relative to the command's first byte (where the reader's
/// next bytes begin). Protocol errors are items of the batch: after a fatal one (the stream
/// is out of step) it is the batch's last item, and every later call throws it.
///
/// Limits: a bulk string at most `maxBulkLength` (512 MiB by default, as Redis), an array at
/// most 1,048,576 elements, an inline command or a length line at most 64 KiB, a command
/// at most ``maxFrameLength`` bytes in all (twice `maxBulkLength`, like Redis's 1 GiB query
/// buffer limit; past it the reader fails with ``TorusError/Kind/frameTooLong``).
public struct RESPDecoder: FrameDecoder, Sendable {
    /// The longest bulk string accepted.
    public let maxBulkLength: Int
    /// The most elements in one command array.
    public static let maxArrayCount = 1024 * 1024
    /// The longest inline command.
    public static let maxInlineLength = 64 * 1024
    /// The most bytes one unfinished command may hold in the reader.
    public var maxFrameLength: Int { max(2 * maxBulkLength, 1 << 20) }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The frame, reused from call to call.
    private var batch = RESPBatch()
    private var failure: RESPParseError?
    /// The array command in progress: how many elements it declared (nil: between commands).
    private var expectedCount: Int?
    /// The elements found so far, as offsets from the command's first byte.
    private var elements: [Range<Int>] = []
    /// Where parsing resumes, as an offset from the command's first byte.
    private var cursor = 0
    /// The declared length of the bulk string whose `$` line was read, if its data has not
    /// all arrived.
    private var pendingBulkLength: Int?

    /// A decoder refusing bulk strings longer than `maxBulkLength` bytes.
    public init(maxBulkLength: Int = 512 * 1024 * 1024) {
        self.maxBulkLength = maxBulkLength
    }

    /// The commands complete in `bytes`, and the bytes they took; nil when none is.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(RESPParseError) -> (frame: RESPBatch, consumed: Int)? {
        if let failure { throw failure }
        batch.removeAll()
        var start = 0  // The first byte of the command being parsed.
        do {
            while start < bytes.count {
                if expectedCount == nil, bytes[start] != UInt8(ascii: "*") {
                    guard let end = try inline(bytes, at: start) else { break }
                    start = end
                } else {
                    guard let end = try array(bytes, at: start) else { break }
                    start = end
                }
            }
        } catch {
            // Fatal: the rest of the stream cannot be read. Answer this batch and close.
            failure = error
            batch.append(error)
            return (batch, bytes.count)
        }
        return start > 0 ? (batch, start) : nil
    }

    // MARK: Arrays

    /// Parses the array command at `start` as far as it has arrived; the offset after it once
    /// it is complete (appended to the batch, or skipped if empty), else nil.
    private mutating func array(_ bytes: UnsafeRawBufferPointer, at start: Int) throws(RESPParseError) -> Int? {
        if expectedCount == nil {
            guard let (count, length) = try Self.lengthLine(bytes, at: start, invalid: .invalidMultibulkLength) else { return nil }
            guard count <= Self.maxArrayCount else { throw .invalidMultibulkLength }
            // `*0` and `*-1` carry no command: skip them, as Redis does.
            if count <= 0 { return start + length }
            expectedCount = count
            elements.removeAll(keepingCapacity: true)
            cursor = length
        }
        while elements.count < expectedCount! {
            if pendingBulkLength == nil {
                let at = start + cursor
                guard at < bytes.count else { return nil }
                guard bytes[at] == UInt8(ascii: "$") else { throw .expectedBulk(found: bytes[at]) }
                guard let (length, lineLength) = try Self.lengthLine(bytes, at: at, invalid: .invalidBulkLength) else { return nil }
                guard length >= 0 else { throw .invalidBulkLength }
                guard length <= maxBulkLength else { throw .bulkTooLarge(limit: maxBulkLength) }
                pendingBulkLength = length
                cursor += lineLength
            }
            let length = pendingBulkLength!
            guard bytes.count - start - cursor >= length + 2 else { return nil }
            let dataEnd = start + cursor + length
            guard bytes[dataEnd] == Self.cr, bytes[dataEnd + 1] == Self.lf else { throw .missingBulkTerminator }
            elements.append(cursor..<(cursor + length))
            cursor += length + 2
            pendingBulkLength = nil
        }
        batch.appendCommand(elements.lazy.map { bytes[(start + $0.lowerBound)..<(start + $0.upperBound)] })
        expectedCount = nil
        return start + cursor
    }

    /// Parses a `*N` or `$N` line at `start`: the number and the line's length with its CRLF;
    /// nil if it has not all arrived.
    private static func lengthLine(_ bytes: UnsafeRawBufferPointer, at start: Int, invalid: RESPParseError) throws(RESPParseError) -> (Int, Int)? {
        guard let lf = try lineEnd(bytes, from: start) else { return nil }
        guard lf - start >= 3, bytes[lf - 1] == cr else { throw invalid }
        var digits = bytes[(start + 1)..<(lf - 1)]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 18 else { throw invalid }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { throw invalid }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return (negative ? -value : value, lf + 1 - start)
    }

    /// The offset of the LF ending the line at `start`, if it arrived; throws when a line
    /// runs past ``maxInlineLength``.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(RESPParseError) -> Int? {
        let window = UnsafeRawBufferPointer(rebasing: bytes[start..<min(bytes.count, start + maxInlineLength + 1)])
        guard let found = window.firstIndex(of: lf) else {
            if bytes.count - start > maxInlineLength { throw .lineTooLong }
            return nil
        }
        return start + found
    }

    // MARK: Inline commands

    /// Parses the inline command at `start`; the offset after its line, else nil.
    private mutating func inline(_ bytes: UnsafeRawBufferPointer, at start: Int) throws(RESPParseError) -> Int? {
        guard let lf = try Self.lineEnd(bytes, from: start) else { return nil }
        let end = lf > start && bytes[lf - 1] == Self.cr ? lf - 1 : lf
        if let arguments = RESPInlineSplitter.split(bytes[start..<end]) {
            if !arguments.isEmpty { batch.appendCommand(arguments) }  // Empty lines are ignored.
        } else {
            batch.append(.unbalancedQuotes)  // Not fatal: the line is skipped.
        }
        return lf + 1
    }
}
