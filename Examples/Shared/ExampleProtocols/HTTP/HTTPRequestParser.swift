/// An incremental HTTP/1.x request parser: feed it bytes as they arrive with ``append(_:)``,
/// then call ``next()`` until it returns nil (it needs more bytes).
///
/// A request split at any byte boundary parses the same as in one piece, since every state
/// waits for its whole unit (a line, or at least one body byte) before moving on. It copies
/// nothing but the bytes it buffers: lines are parsed in place, the head's method and target
/// are the only strings made (small ones need no allocation), body pieces are slices.
///
/// Limits: request line and headers together at most `maxHeaderBytes` (then
/// ``HTTPParseError/headersTooLarge``, which is 431); a chunk-size line at most 1 KiB. Memory is
/// bounded by those limits plus one body piece, whatever the peer sends.
public struct HTTPRequestParser: Sendable {
    private enum State: Sendable {
        case requestLine
        case headers
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case complete
        case failed(HTTPParseError)
    }

    private static let maxChunkLineBytes = 1024
    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The largest request line plus headers accepted.
    public let maxHeaderBytes: Int
    private var buffer = ByteAccumulator()
    private var state = State.requestLine
    /// Bytes of the current head (or trailer section) consumed so far.
    private var headBytes = 0
    /// How far into the current line a search for LF already looked.
    private var scanned = 0
    private var head = HTTPRequestHead(method: "", target: "", minorVersion: 1, keepAlive: true)
    private var sawClose = false
    private var sawKeepAlive = false

    /// A parser that accepts heads up to `maxHeaderBytes` (16 KiB by default).
    public init(maxHeaderBytes: Int = 16 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// Bytes received but not parsed yet.
    public var bufferedCount: Int { buffer.readableCount }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) { buffer.append(bytes) }

    /// Adds received bytes.
    public mutating func append(_ bytes: some Collection<UInt8>) { buffer.append(bytes) }

    /// The next event, or nil when more bytes are needed.
    ///
    /// - Throws: ``HTTPParseError``; once thrown, every later call throws it again.
    public mutating func next() throws(HTTPParseError) -> HTTPParserEvent? {
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .complete:
                state = .requestLine
                headBytes = 0
                return .end
            case .requestLine, .headers, .trailers, .chunkSize:
                let line: Range<Int>
                do {
                    guard let found = try nextLine() else { return nil }
                    line = found
                } catch {
                    state = .failed(error)
                    throw error
                }
                do throws(HTTPParseError) {
                    if let event = try handle(line) { return event }
                } catch {
                    state = .failed(error)
                    throw error
                }
            case .body(let remaining):
                guard let piece = takeBody(upTo: remaining) else { return nil }
                state = remaining == piece.count ? .complete : .body(remaining: remaining - piece.count)
                return .body(piece)
            case .chunkData(let remaining):
                guard let piece = takeBody(upTo: remaining) else { return nil }
                state = remaining == piece.count ? .chunkDataEnd : .chunkData(remaining: remaining - piece.count)
                return .body(piece)
            case .chunkDataEnd:
                guard buffer.readableCount >= 2 else { return nil }
                let start = buffer.readIndex
                guard buffer.storage[start] == Self.cr, buffer.storage[start + 1] == Self.lf else {
                    state = .failed(.malformedChunk)
                    throw .malformedChunk
                }
                buffer.consume(2)
                state = .chunkSize
            }
        }
    }

    // MARK: Lines

    /// The next whole line without its CRLF, consumed; nil if it has not all arrived.
    private mutating func nextLine() throws(HTTPParseError) -> Range<Int>? {
        let start = buffer.readIndex
        let limit: Int
        let tooLong: HTTPParseError
        if case .chunkSize = state {
            limit = Self.maxChunkLineBytes
            tooLong = .malformedChunk
        } else {
            limit = maxHeaderBytes - headBytes
            tooLong = .headersTooLarge
        }
        guard let lf = buffer.firstIndex(of: Self.lf, from: start + scanned) else {
            scanned = buffer.readableCount
            if scanned > limit { throw tooLong }
            return nil
        }
        scanned = 0
        let consumed = lf + 1 - start
        if consumed > limit { throw tooLong }
        guard lf > start, buffer.storage[lf - 1] == Self.cr else { throw .malformedLineEnding }
        if case .chunkSize = state {} else { headBytes += consumed }
        buffer.consume(consumed)
        let line = start..<(lf - 1)
        // A CR inside the line is a bare CR: not a line ending we accept.
        if buffer.storage[line].contains(Self.cr) { throw .malformedLineEnding }
        return line
    }

    private mutating func handle(_ line: Range<Int>) throws(HTTPParseError) -> HTTPParserEvent? {
        switch state {
        case .requestLine:
            // Empty lines before a request are allowed (RFC 9112 §2.2).
            guard !line.isEmpty else { return nil }
            try parseRequestLine(line)
            state = .headers
            return nil
        case .headers:
            if line.isEmpty { return try endOfHead() }
            try parseHeader(line)
            return nil
        case .chunkSize:
            let size = try parseChunkSize(line)
            if size == 0 {
                state = .trailers
                headBytes = 0
            } else {
                state = .chunkData(remaining: size)
            }
            return nil
        case .trailers:
            if line.isEmpty {
                state = .complete
            } else {
                try checkHeaderSyntax(line)
            }
            return nil
        default:
            preconditionFailure("not a line state")
        }
    }

    private mutating func takeBody(upTo remaining: Int) -> ArraySlice<UInt8>? {
        let count = min(remaining, buffer.readableCount)
        guard count > 0 else { return nil }
        let start = buffer.readIndex
        buffer.consume(count)
        return buffer.storage[start..<(start + count)]
    }

    // MARK: Request line and headers

    private mutating func parseRequestLine(_ line: Range<Int>) throws(HTTPParseError) {
        let bytes = buffer.storage
        guard let firstSpace = bytes[line].firstIndex(of: UInt8(ascii: " ")), firstSpace > line.lowerBound,
              let secondSpace = bytes[(firstSpace + 1)..<line.upperBound].firstIndex(of: UInt8(ascii: " ")),
              secondSpace > firstSpace + 1
        else { throw .malformedRequestLine }
        let method = line.lowerBound..<firstSpace
        let target = (firstSpace + 1)..<secondSpace
        let version = (secondSpace + 1)..<line.upperBound
        guard bytes[method].allSatisfy(HTTPSyntax.isTokenCharacter),
              bytes[target].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { throw .malformedRequestLine }
        head = HTTPRequestHead(
            method: String(decoding: bytes[method], as: UTF8.self),
            target: String(decoding: bytes[target], as: UTF8.self),
            minorVersion: try parseVersion(bytes[version]),
            keepAlive: true
        )
        sawClose = false
        sawKeepAlive = false
    }

    private func parseVersion(_ version: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        guard version.count == 8, version.starts(with: "HTTP/".utf8) else { throw .malformedRequestLine }
        let major = version[version.startIndex + 5]
        let dot = version[version.startIndex + 6]
        let minor = version[version.startIndex + 7]
        guard HTTPSyntax.isDigit(major), dot == UInt8(ascii: "."), HTTPSyntax.isDigit(minor) else { throw .malformedRequestLine }
        guard major == UInt8(ascii: "1"), minor <= UInt8(ascii: "1") else { throw .unsupportedVersion }
        return Int(minor - UInt8(ascii: "0"))
    }

    /// Splits a header line into name and trimmed value, checking both.
    private func splitHeader(_ line: Range<Int>) throws(HTTPParseError) -> (name: Range<Int>, value: Range<Int>) {
        let bytes = buffer.storage
        guard let colon = bytes[line].firstIndex(of: UInt8(ascii: ":")), colon > line.lowerBound,
              bytes[line.lowerBound..<colon].allSatisfy(HTTPSyntax.isTokenCharacter)
        else { throw .malformedHeader }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, HTTPSyntax.isWhitespace(bytes[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart, HTTPSyntax.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
        guard bytes[valueStart..<valueEnd].allSatisfy(HTTPSyntax.isFieldValueCharacter) else { throw .malformedHeader }
        return (line.lowerBound..<colon, valueStart..<valueEnd)
    }

    private func checkHeaderSyntax(_ line: Range<Int>) throws(HTTPParseError) {
        _ = try splitHeader(line)
    }

    private mutating func parseHeader(_ line: Range<Int>) throws(HTTPParseError) {
        let (name, value) = try splitHeader(line)
        let bytes = buffer.storage
        if HTTPSyntax.equalsIgnoringCase(bytes[name], "content-length") {
            guard let length = HTTPSyntax.decimal(bytes[value]) else { throw .invalidContentLength }
            if let previous = head.contentLength, previous != length { throw .invalidContentLength }
            head.contentLength = length
        } else if HTTPSyntax.equalsIgnoringCase(bytes[name], "transfer-encoding") {
            guard HTTPSyntax.equalsIgnoringCase(bytes[value], "chunked"), !head.isChunked else {
                throw .unsupportedTransferEncoding
            }
            head.isChunked = true
        } else if HTTPSyntax.equalsIgnoringCase(bytes[name], "connection") {
            for token in bytes[value].split(separator: UInt8(ascii: ",")) {
                let trimmed = HTTPSyntax.trimmed(token)
                if HTTPSyntax.equalsIgnoringCase(trimmed, "close") { sawClose = true }
                if HTTPSyntax.equalsIgnoringCase(trimmed, "keep-alive") { sawKeepAlive = true }
            }
        }
    }

    private mutating func endOfHead() throws(HTTPParseError) -> HTTPParserEvent {
        // Both framings at once is how request smuggling starts: refuse it.
        if head.isChunked && head.contentLength != nil { throw .invalidContentLength }
        head.keepAlive = head.minorVersion == 1 ? !sawClose : (sawKeepAlive && !sawClose)
        if head.isChunked {
            state = .chunkSize
        } else if let length = head.contentLength, length > 0 {
            state = .body(remaining: length)
        } else {
            state = .complete
        }
        return .head(head)
    }

    private func parseChunkSize(_ line: Range<Int>) throws(HTTPParseError) -> Int {
        let bytes = buffer.storage
        var end = bytes[line].firstIndex(of: UInt8(ascii: ";")) ?? line.upperBound
        while end > line.lowerBound, HTTPSyntax.isWhitespace(bytes[end - 1]) { end -= 1 }
        let digits = bytes[line.lowerBound..<end]
        guard !digits.isEmpty, digits.count <= 15 else { throw .malformedChunk }
        var size = 0
        for digit in digits {
            guard let value = HTTPSyntax.hexValue(digit) else { throw .malformedChunk }
            size = size * 16 + value
        }
        return size
    }
}
