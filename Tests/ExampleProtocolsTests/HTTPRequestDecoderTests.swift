import ExampleProtocols
import Testing

/// The HTTP/1.1 request decoder of the examples: pipelined requests, both body framings,
/// connection semantics, every error, and that cutting the bytes anywhere changes nothing.
@Suite struct HTTPRequestDecoderTests {
    /// What the decoder made of a byte stream.
    enum Item: Equatable {
        case request(HTTPRequestHead)
        case error(HTTPParseError)
    }

    /// Feeds `pieces` one after another as a reader would; stops at the first error.
    static func transcript(_ pieces: [[UInt8]], maxHeaderBytes: Int = 16 * 1024,
                           maxBuffered: inout Int) -> [Item] {
        var decoder = HTTPRequestDecoder(maxHeaderBytes: maxHeaderBytes)
        var items: [Item] = []
        do {
            try ReaderSimulation.run(&decoder, pieces, maxHeld: &maxBuffered) { heads in
                items += heads.map { .request($0) }
            }
        } catch let error as HTTPParseError {
            items.append(.error(error))
            // Once failed, it stays failed.
            #expect(throws: error) { try [UInt8]("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { try decoder.decode($0) } }
        } catch {
            Issue.record("the reader's limit was reached: \(error)")
        }
        return items
    }

    static func transcript(_ pieces: [[UInt8]], maxHeaderBytes: Int = 16 * 1024) -> [Item] {
        var ignored = 0
        return transcript(pieces, maxHeaderBytes: maxHeaderBytes, maxBuffered: &ignored)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let pipelined = bytes(
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "\r\nGET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            + "GET /last HTTP/1.1\r\nConnection: Close\r\n\r\n")

    static let pipelinedItems: [Item] = [
        .request(HTTPRequestHead(method: "GET", target: "/", minorVersion: 1, keepAlive: true)),
        .request(HTTPRequestHead(method: "POST", target: "/form", minorVersion: 1, contentLength: 5, keepAlive: true)),
        .request(HTTPRequestHead(method: "PUT", target: "/up", minorVersion: 1, isChunked: true, keepAlive: true)),
        .request(HTTPRequestHead(method: "GET", target: "/old", minorVersion: 0, keepAlive: true)),
        .request(HTTPRequestHead(method: "GET", target: "/last", minorVersion: 1, keepAlive: false)),
    ]

    @Test func pipelinedRequestsParseInOrderWithBothBodyFramings() {
        // Bodies are skipped, so the requests after them are the test of their framing.
        #expect(Self.transcript([Self.pipelined]) == Self.pipelinedItems)
    }

    @Test func http10ClosesByDefault() {
        let items = Self.transcript([Self.bytes("GET / HTTP/1.0\r\nHost: x\r\n\r\n")])
        #expect(items == [.request(HTTPRequestHead(method: "GET", target: "/", minorVersion: 0, keepAlive: false))])
    }

    @Test func everyTwoWaySplitParsesTheSame() {
        for pieces in Splits.allTwoWay(Self.pipelined) {
            #expect(Self.transcript(pieces) == Self.pipelinedItems, "split at \(pieces[0].count)")
        }
    }

    @Test func byteByByteParsesTheSame() {
        #expect(Self.transcript(Self.pipelined.map { [$0] }) == Self.pipelinedItems)
    }

    @Test(arguments: [1, 2, 3, 42] as [UInt64])
    func randomSplitsParseTheSame(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for round in 0..<200 {
            let pieces = Splits.random(Self.pipelined, maxPiece: 9, using: &generator)
            #expect(Self.transcript(pieces) == Self.pipelinedItems, "seed \(seed), round \(round)")
        }
    }

    static let malformed: [(String, HTTPParseError)] = [
        ("GET /\r\n\r\n", .malformedRequestLine),
        ("GET  / HTTP/1.1\r\n\r\n", .malformedRequestLine),
        ("G(T / HTTP/1.1\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1 extra\r\n\r\n", .malformedRequestLine),
        ("GET / HTTQ/1.1\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/2.0\r\n\r\n", .unsupportedVersion),
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", .malformedLineEnding),
        ("GET / HTTP/1.1\r\nHo\rst: x\r\n\r\n", .malformedLineEnding),
        ("GET / HTTP/1.1\r\nHost x\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\n folded\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n", .malformedHeader),
        ("POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferEncoding),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformedChunk),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", .malformedChunk),
    ]

    @Test func malformedRequestsFailWithTheirError() {
        for (request, error) in Self.malformed {
            let bytes = Self.bytes(request)
            #expect(Self.transcript([bytes]).last == .error(error), "\(request.debugDescription)")
            // The same error however the bytes arrive.
            for pieces in Splits.allTwoWay(bytes) {
                #expect(Self.transcript(pieces).last == .error(error), "\(request.debugDescription) split at \(pieces[0].count)")
            }
            #expect(error.status != 200)
        }
    }

    @Test func headersOverTheLimitFailWith431WithoutBufferingMore() {
        let big = Self.bytes("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 17 * 1024) + "\r\n\r\n")
        #expect(Self.transcript([big]).last == .error(.headersTooLarge))
        #expect(HTTPParseError.headersTooLarge.status == 431)
        // Arriving slowly, it is refused once the limit is passed, not when it ends.
        var maxBuffered = 0
        var generator = SeededGenerator(seed: 7)
        let pieces = Splits.random(Array(big.dropLast(4)), maxPiece: 100, using: &generator)
        #expect(Self.transcript(pieces, maxBuffered: &maxBuffered).last == .error(.headersTooLarge))
        #expect(maxBuffered <= 16 * 1024 + 100)
        // Many small headers add up too.
        let many = Self.bytes("GET / HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 3000) + "\r\n")
        #expect(Self.transcript([many]).last == .error(.headersTooLarge))
        // Just under the limit is fine.
        let fits = Self.bytes("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 16 * 1024 - 40) + "\r\n\r\n")
        #expect(Self.transcript([fits]).count == 1)
    }

    @Test(arguments: [11, 12, 13, 14] as [UInt64])
    func randomGarbageNeverCrashesAndStaysBounded(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for round in 0..<300 {
            let garbage = Splits.garbage(count: Int.random(in: 0...3000, using: &generator), using: &generator)
            var maxBuffered = 0
            let items = Self.transcript(Splits.random(garbage, maxPiece: 64, using: &generator),
                                        maxHeaderBytes: 1024, maxBuffered: &maxBuffered)
            // Whatever it made of the garbage, memory never exceeds the limit plus a piece.
            _ = items
            #expect(maxBuffered <= 1024 + 64, "seed \(seed), round \(round)")
        }
    }

    @Test(arguments: [21, 22, 23] as [UInt64])
    func mutatedRequestsParseTheSameHoweverSplit(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for round in 0..<300 {
            let mutated = Splits.mutated(Self.pipelined, using: &generator)
            let whole = Self.transcript([mutated])
            let split = Self.transcript(Splits.random(mutated, maxPiece: 7, using: &generator))
            #expect(whole == split, "seed \(seed), round \(round)")
        }
    }
}
