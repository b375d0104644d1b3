public import Torus

/// Cuts an HTTP/1.x request stream into requests, for a ``BufferedReader``: each frame is the
/// heads of every request that ended in the bytes at hand, in order (often one; a pipelined
/// batch takes one frame, so a server can answer it with one write). Bodies, by
/// `Content-Length` or chunked, are framed and skipped: the example servers answer without
/// them.
///
/// ```swift
/// var decoder = HTTPRequestDecoder()
/// while let requests = try await reader.readFrame(using: &decoder, timeout: idleTimeout) {
///     for head in requests { answer(head) }
/// }
/// ```
///
/// Nothing is copied: a head is parsed in place, line by line as its lines arrive (nothing of
/// it is consumed before it is whole, so a reader's timeout covers the whole head), and body
/// bytes are consumed as they arrive. The method and target are the only strings made (small
/// ones need no allocation), and the frame's array is the decoder's own, reused when the
/// caller has dropped the previous frame: a keep-alive connection decodes with no allocation.
/// A frame may be empty (it consumed body bytes or blank lines).
///
/// Limits: request line and headers together at most `maxHeaderBytes` (then
/// ``HTTPParseError/headersTooLarge``, which is 431), a chunk-size line at most 1 KiB. Errors
/// are ``HTTPParseError``s: the requests that ended before the bad bytes come first, in a
/// frame, and the next call throws; after that, every call throws again.
public struct HTTPRequestDecoder: FrameDecoder, Sendable {
    private enum State: Sendable {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
    }

    private static let maxChunkLineBytes = 1024
    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The largest request line plus headers accepted.
    public let maxHeaderBytes: Int
    /// The reader never needs to hold more than a head: bodies are consumed as they come.
    public var maxFrameLength: Int { maxHeaderBytes }
    private var state = State.head
    private var failure: HTTPParseError?
    /// The requests that ended in the bytes of the last call: the frame.
    private var requests: [HTTPRequestHead] = []
    /// Bytes of the unfinished head already parsed (whole lines), or of the trailer section.
    private var sectionBytes = 0
    private var head = HTTPRequestHead(method: "", target: "", minorVersion: 1, keepAlive: true)
    private var sawClose = false
    private var sawKeepAlive = false

    /// A decoder that accepts heads up to `maxHeaderBytes` (16 KiB by default).
    public init(maxHeaderBytes: Int = 16 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// The heads of the requests that end in `bytes`, and the bytes they (and any body
    /// bytes or blank lines after them) took; nil when nothing can be consumed yet.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (frame: [HTTPRequestHead], consumed: Int)? {
        if let failure { throw failure }
        requests.removeAll(keepingCapacity: true)
        var consumed = 0
        do {
            while try step(bytes, at: &consumed) {}
        } catch {
            failure = error
            if requests.isEmpty { throw error }  // Otherwise the next call throws it.
        }
        return consumed > 0 ? (requests, consumed) : nil
    }

    /// Decodes one unit at `offset` (a head, a body piece, a chunk line, a blank line) and
    /// moves `offset` past what it consumed; false when the unit has not all arrived.
    private mutating func step(_ bytes: UnsafeRawBufferPointer, at offset: inout Int) throws(HTTPParseError) -> Bool {
        let available = bytes.count - offset
        switch state {
        case .head:
            // Empty lines before a request are allowed (RFC 9112 §2.2).
            if sectionBytes == 0, available >= 2, bytes[offset] == Self.cr, bytes[offset + 1] == Self.lf {
                offset += 2
                return true
            }
            if sectionBytes == 0, available == 1, bytes[offset] == Self.cr { return false }
            guard let end = try parseHead(bytes, from: offset) else { return false }
            offset = end
        case .body(let remaining):
            let count = min(remaining, available)
            guard count > 0 else { return false }
            offset += count
            if count == remaining { finishRequest() } else { state = .body(remaining: remaining - count) }
        case .chunkData(let remaining):
            let count = min(remaining, available)
            guard count > 0 else { return false }
            offset += count
            state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
        case .chunkDataEnd:
            guard available >= 2 else { return false }
            guard bytes[offset] == Self.cr, bytes[offset + 1] == Self.lf else { throw .malformedChunk }
            offset += 2
            state = .chunkSize
        case .chunkSize:
            guard let line = try Self.line(in: bytes, from: offset, limit: Self.maxChunkLineBytes, tooLong: .malformedChunk) else { return false }
            offset = line.upperBound + 2
            let size = try Self.chunkSize(bytes[line])
            state = size == 0 ? .trailers : .chunkData(remaining: size)
        case .trailers:
            guard let line = try Self.line(in: bytes, from: offset, limit: maxHeaderBytes - sectionBytes, tooLong: .headersTooLarge) else { return false }
            offset = line.upperBound + 2
            sectionBytes += line.count + 2
            if line.isEmpty { finishRequest() } else { _ = try Self.splitHeader(bytes[line]) }
        }
        return true
    }

    private mutating func finishRequest() {
        requests.append(head)
        state = .head
        sectionBytes = 0
    }

    // MARK: Lines

    /// The line at `start` without its CRLF; nil if it has not all arrived.
    private static func line(
        in bytes: UnsafeRawBufferPointer, from start: Int, limit: Int, tooLong: HTTPParseError
    ) throws(HTTPParseError) -> Range<Int>? {
        let window = UnsafeRawBufferPointer(rebasing: bytes[start..<min(bytes.count, start + max(0, limit))])
        guard let found = window.firstIndex(of: lf) else {
            if bytes.count - start > limit { throw tooLong }
            return nil
        }
        let lf = start + found
        guard lf > start, bytes[lf - 1] == cr else { throw .malformedLineEnding }
        let line = start..<(lf - 1)
        // A CR inside the line is a bare CR: not a line ending we accept.
        if bytes[line].contains(cr) { throw .malformedLineEnding }
        return line
    }

    // MARK: Request line and headers

    /// Parses the lines of the head at `start` that arrived since the last call; the offset
    /// after the head once it ended, else nil.
    private mutating func parseHead(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(HTTPParseError) -> Int? {
        while true {
            let lineStart = start + sectionBytes
            guard let line = try Self.line(in: bytes, from: lineStart, limit: maxHeaderBytes - sectionBytes, tooLong: .headersTooLarge) else {
                return nil
            }
            let isRequestLine = sectionBytes == 0
            sectionBytes += line.count + 2
            if isRequestLine {
                try parseRequestLine(bytes[line])
            } else if line.isEmpty {
                try endOfHead()
                return line.upperBound + 2
            } else {
                try parseHeader(bytes[line])
            }
        }
    }

    private mutating func parseRequestLine(_ line: HTTPSyntax.Bytes) throws(HTTPParseError) {
        guard let firstSpace = line.firstIndex(of: UInt8(ascii: " ")), firstSpace > line.startIndex,
              let secondSpace = line[(firstSpace + 1)...].firstIndex(of: UInt8(ascii: " ")),
              secondSpace > firstSpace + 1
        else { throw .malformedRequestLine }
        let method = line[..<firstSpace]
        let target = line[(firstSpace + 1)..<secondSpace]
        guard method.allSatisfy(HTTPSyntax.isTokenCharacter), target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .malformedRequestLine
        }
        head = HTTPRequestHead(
            method: String(decoding: method, as: UTF8.self),
            target: String(decoding: target, as: UTF8.self),
            minorVersion: try Self.version(line[(secondSpace + 1)...]),
            keepAlive: true
        )
        sawClose = false
        sawKeepAlive = false
    }

    private static func version(_ version: HTTPSyntax.Bytes) throws(HTTPParseError) -> Int {
        guard version.count == 8, version.starts(with: "HTTP/".utf8) else { throw .malformedRequestLine }
        let major = version[version.startIndex + 5]
        let dot = version[version.startIndex + 6]
        let minor = version[version.startIndex + 7]
        guard HTTPSyntax.isDigit(major), dot == UInt8(ascii: "."), HTTPSyntax.isDigit(minor) else { throw .malformedRequestLine }
        guard major == UInt8(ascii: "1"), minor <= UInt8(ascii: "1") else { throw .unsupportedVersion }
        return Int(minor - UInt8(ascii: "0"))
    }

    /// Splits a header line into name and trimmed value, checking both.
    private static func splitHeader(_ line: HTTPSyntax.Bytes) throws(HTTPParseError) -> (name: HTTPSyntax.Bytes, value: HTTPSyntax.Bytes) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
              line[..<colon].allSatisfy(HTTPSyntax.isTokenCharacter)
        else { throw .malformedHeader }
        let value = HTTPSyntax.trimmed(line[(colon + 1)...])
        guard value.allSatisfy(HTTPSyntax.isFieldValueCharacter) else { throw .malformedHeader }
        return (line[..<colon], value)
    }

    private mutating func parseHeader(_ line: HTTPSyntax.Bytes) throws(HTTPParseError) {
        let (name, value) = try Self.splitHeader(line)
        if HTTPSyntax.equalsIgnoringCase(name, "content-length") {
            guard let length = HTTPSyntax.decimal(value) else { throw .invalidContentLength }
            if let previous = head.contentLength, previous != length { throw .invalidContentLength }
            head.contentLength = length
        } else if HTTPSyntax.equalsIgnoringCase(name, "transfer-encoding") {
            guard HTTPSyntax.equalsIgnoringCase(value, "chunked"), !head.isChunked else {
                throw .unsupportedTransferEncoding
            }
            head.isChunked = true
        } else if HTTPSyntax.equalsIgnoringCase(name, "connection") {
            for token in value.split(separator: UInt8(ascii: ",")) {
                let trimmed = HTTPSyntax.trimmed(token)
                if HTTPSyntax.equalsIgnoringCase(trimmed, "close") { sawClose = true }
                if HTTPSyntax.equalsIgnoringCase(trimmed, "keep-alive") { sawKeepAlive = true }
            }
        }
    }

    private mutating func endOfHead() throws(HTTPParseError) {
        // Both framings at once is how request smuggling starts: refuse it.
        if head.isChunked && head.contentLength != nil { throw .invalidContentLength }
        head.keepAlive = head.minorVersion == 1 ? !sawClose : (sawKeepAlive && !sawClose)
        sectionBytes = 0
        if head.isChunked {
            state = .chunkSize
        } else if let length = head.contentLength, length > 0 {
            state = .body(remaining: length)
        } else {
            finishRequest()
        }
    }

    private static func chunkSize(_ line: HTTPSyntax.Bytes) throws(HTTPParseError) -> Int {
        var digits = line[..<(line.firstIndex(of: UInt8(ascii: ";")) ?? line.endIndex)]
        while let last = digits.last, HTTPSyntax.isWhitespace(last) { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 15 else { throw .malformedChunk }
        var size = 0
        for digit in digits {
            guard let value = HTTPSyntax.hexValue(digit) else { throw .malformedChunk }
            size = size * 16 + value
        }
        return size
    }
}
