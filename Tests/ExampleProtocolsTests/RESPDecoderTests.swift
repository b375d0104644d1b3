import ExampleProtocols
import Testing

/// The RESP decoder of kv-server: arrays and inline commands, pipelining, the errors it can
/// recover from and those it cannot, the bulk limit, and that cutting the bytes anywhere
/// changes nothing.
@Suite struct RESPDecoderTests {
    enum Item: Equatable {
        case command([String])
        case error(RESPParseError)
    }

    /// Feeds `pieces` one after another as a reader would; goes on after a recoverable
    /// error, stops at a fatal one.
    static func transcript(_ pieces: [[UInt8]], maxBulkLength: Int = 512 * 1024 * 1024,
                           maxBuffered: inout Int) -> [Item] {
        var decoder = RESPDecoder(maxBulkLength: maxBulkLength)
        var items: [Item] = []
        var fatal: RESPParseError?
        do {
            try ReaderSimulation.run(&decoder, pieces, maxHeld: &maxBuffered) { batch in
                for request in batch where fatal == nil {
                    switch request {
                    case .command(let command): items.append(.command(command.map { String(decoding: $0, as: UTF8.self) }))
                    case .protocolError(let error):
                        items.append(.error(error))
                        if error.isFatal { fatal = error }
                    }
                }
            }
        } catch let error as RESPParseError {
            // Thrown by a call after the batch that ended with it.
            #expect(error == fatal)
        } catch {
            Issue.record("the reader's limit was reached: \(error)")
        }
        if let fatal {
            #expect(throws: fatal) { try [UInt8]("PING\r\n".utf8).withUnsafeBytes { try decoder.decode($0) } }
        }
        return items
    }

    static func transcript(_ pieces: [[UInt8]], maxBulkLength: Int = 512 * 1024 * 1024) -> [Item] {
        var ignored = 0
        return transcript(pieces, maxBulkLength: maxBulkLength, maxBuffered: &ignored)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let pipelined = bytes(
        "*1\r\n$4\r\nPING\r\n"
            + "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$12\r\nhello\r\nworld\r\n"  // CRLF inside a bulk string is data
            + "*0\r\n*-1\r\n"
            + "GET key\r\n"
            + "\r\n"
            + "SET \"two words\" 'it\\'s' \"\\x41\\n\"\r\n"
            + "ECHO \"unbalanced\r\n"
            + "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
            + "MGET a b c\n")

    static let pipelinedItems: [Item] = [
        .command(["PING"]),
        .command(["SET", "key", "hello\r\nworld"]),
        .command(["GET", "key"]),
        .command(["SET", "two words", "it's", "A\n"]),
        .error(.unbalancedQuotes),
        .command(["ECHO", ""]),
        .command(["MGET", "a", "b", "c"]),
    ]

    @Test func pipelinedCommandsParseInOrder() {
        #expect(Self.transcript([Self.pipelined]) == Self.pipelinedItems)
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

    static let broken: [(String, RESPParseError)] = [
        ("*x\r\n", .invalidMultibulkLength),
        ("*\r\n", .invalidMultibulkLength),
        ("*99999999\r\n", .invalidMultibulkLength),
        ("*1\r\n+PING\r\n", .expectedBulk(found: UInt8(ascii: "+"))),
        ("*1\r\n$-1\r\n", .invalidBulkLength),
        ("*1\r\n$abc\r\n", .invalidBulkLength),
        ("*1\r\n$4\r\nPINGXX", .missingBulkTerminator),
        ("*1\r\n$4\nPING\r\n", .invalidBulkLength),
    ]

    @Test func brokenFramesAreFatalHoweverSplit() {
        for (frame, error) in Self.broken {
            let bytes = Self.bytes("PING\r\n" + frame + "PING\r\n")
            #expect(error.isFatal)
            #expect(!error.message.isEmpty)
            for pieces in Splits.allTwoWay(bytes) {
                #expect(Self.transcript(pieces) == [.command(["PING"]), .error(error)], "\(frame.debugDescription) split at \(pieces[0].count)")
            }
        }
    }

    @Test func unbalancedQuotesAreSkippedAndParsingGoesOn() {
        let items = Self.transcript([Self.bytes("SET a \"b\r\nSET a 'b'c\r\nGET a\r\n")])
        #expect(items == [.error(.unbalancedQuotes), .error(.unbalancedQuotes), .command(["GET", "a"])])
        #expect(!RESPParseError.unbalancedQuotes.isFatal)
    }

    @Test func oversizedBulkIsRefusedFromItsLengthLine() {
        // Refused as soon as the length is read, before any of the data has to be buffered.
        let items = Self.transcript([Self.bytes("*2\r\n$3\r\nGET\r\n$1025\r\n")], maxBulkLength: 1024)
        #expect(items == [.error(.bulkTooLarge(limit: 1024))])
        // The default limit is Redis's 512 MiB.
        #expect(Self.transcript([Self.bytes("*1\r\n$536870913\r\n")]) == [.error(.bulkTooLarge(limit: 512 * 1024 * 1024))])
        // At the limit it is accepted.
        let fits = "*1\r\n$1024\r\n" + String(repeating: "v", count: 1024) + "\r\n"
        #expect(Self.transcript([Self.bytes(fits)], maxBulkLength: 1024) == [.command([String(repeating: "v", count: 1024)])])
    }

    @Test func endlessInlineLineIsRefused() {
        let line = [UInt8](repeating: UInt8(ascii: "a"), count: RESPDecoder.maxInlineLength + 10)
        var maxBuffered = 0
        var generator = SeededGenerator(seed: 5)
        let items = Self.transcript(Splits.random(line, maxPiece: 4096, using: &generator), maxBuffered: &maxBuffered)
        #expect(items == [.error(.lineTooLong)])
        #expect(maxBuffered <= RESPDecoder.maxInlineLength + 4096)
    }

    @Test(arguments: [11, 12, 13, 14] as [UInt64])
    func randomGarbageNeverCrashesAndStaysBounded(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for round in 0..<300 {
            let garbage = Splits.garbage(count: Int.random(in: 0...3000, using: &generator), using: &generator)
            var maxBuffered = 0
            let items = Self.transcript(Splits.random(garbage, maxPiece: 64, using: &generator),
                                        maxBulkLength: 256, maxBuffered: &maxBuffered)
            // Only the last item can be a fatal error; memory stays within the limits.
            for item in items.dropLast() {
                if case .error(let error) = item { #expect(!error.isFatal, "seed \(seed), round \(round)") }
            }
            #expect(maxBuffered <= RESPDecoder.maxInlineLength + 256 + 64, "seed \(seed), round \(round)")
        }
    }

    @Test(arguments: [21, 22, 23] as [UInt64])
    func mutatedStreamsParseTheSameHoweverSplit(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for round in 0..<300 {
            let mutated = Splits.mutated(Self.pipelined, using: &generator)
            let whole = Self.transcript([mutated])
            let split = Self.transcript(Splits.random(mutated, maxPiece: 7, using: &generator))
            #expect(whole == split, "seed \(seed), round \(round)")
        }
    }

    @Test func encoderWritesRESP2() {
        var encoder = RESPEncoder()
        encoder.simpleString("OK")
        encoder.error("ERR bad\r\nthing")
        encoder.integer(-1234567890123)
        encoder.integer(0)
        encoder.bulk(Self.bytes("hi"))
        encoder.bulk(nil as [UInt8]?)
        encoder.arrayHeader(2)
        #expect(String(decoding: encoder.bytes, as: UTF8.self)
            == "+OK\r\n-ERR bad  thing\r\n:-1234567890123\r\n:0\r\n$2\r\nhi\r\n$-1\r\n*2\r\n")
    }
}
