import Testing
import Torus

extension TorusTests {
    /// Every framing helper of `BufferedReader`, over a scripted stream whose receive
    /// boundaries the test chooses: frames split at every byte boundary, many frames per
    /// receive, limits, and the stream ending inside a frame.
    @Suite struct FramingTests {
        // MARK: Helpers

        /// Every way to cut `bytes` into two receives, plus one byte per receive and all in one.
        static func cuttings(of bytes: [UInt8]) -> [[Int]] {
            var all: [[Int]] = [[], Array(1..<max(1, bytes.count))]
            for cut in 1..<max(1, bytes.count) { all.append([cut]) }
            // And a few random three-way cuts.
            var generator = SplitMix64(seed: 7)
            for _ in 0..<20 where bytes.count > 2 {
                let a = Int.random(in: 1..<bytes.count, using: &generator)
                let b = Int.random(in: 1..<bytes.count, using: &generator)
                all.append([min(a, b), max(a, b)])
            }
            return all
        }

        /// Reads every frame `read` returns until nil.
        static func readAll<T>(_ reader: BufferedReader<ScriptedStream>, _ read: (BufferedReader<ScriptedStream>) async throws -> T?) async throws -> [T] {
            var frames: [T] = []
            while let frame = try await read(reader) { frames.append(frame) }
            return frames
        }

        static func lengthPrefixed(_ payloads: [[UInt8]], width: Int, bigEndian: Bool) -> [UInt8] {
            var bytes: [UInt8] = []
            for payload in payloads {
                var prefix = (0..<width).map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> (8 * $0)) }
                if bigEndian { prefix.reverse() }
                bytes += prefix + payload
            }
            return bytes
        }

        // MARK: Lines

        @Test func linesSplitAtEveryByteBoundaryComeOutWhole() async throws {
            let text = "first\nsecond\r\n\nfourth with spaces\r\n\r\nlast without ending"
            let expected = ["first", "second", "", "fourth with spaces", "", "last without ending"]
            let bytes = Array(text.utf8)
            for cuts in Self.cuttings(of: bytes) {
                let reader = BufferedReader(ScriptedStream(bytes, cutAt: cuts))
                let lines = try await Self.readAll(reader) { try await $0.readLine() }
                #expect(lines == expected, "cut at \(cuts)")
            }
        }

        @Test func aCarriageReturnSplitFromItsNewlineIsPartOfTheEnding() async throws {
            let reader = BufferedReader(ScriptedStream([Array("a\r".utf8), Array("\nb\r".utf8), Array("x\n".utf8)]))
            #expect(try await reader.readLine() == "a")
            #expect(try await reader.readLine() == "b\rx")
            #expect(try await reader.readLine() == nil)
        }

        @Test func manyLinesInOneReceiveTakeOneReceive() async throws {
            let bytes = Array((0..<1000).map { "line \($0)\n" }.joined().utf8)
            let stream = ScriptedStream([bytes])
            var count = 0
            for try await line in stream.lines() {
                #expect(line == "line \(count)")
                count += 1
            }
            #expect(count == 1000)
            // One receive with the bytes, one that found the end.
            #expect(await stream.receives == 2)
        }

        @Test func aLineOverItsLimitFailsWithoutBufferingTheRest() async throws {
            // 1 MiB with no line ending, in 4 KiB receives: the reader gives up at the limit.
            let chunk = [UInt8](repeating: 0x61, count: 4096)
            let stream = ScriptedStream(Array(repeating: chunk, count: 256))
            let reader = BufferedReader(stream)
            let error = await expectTorusError(.frameTooLong) { try await reader.readLine(maxLength: 10_000) }
            #expect(error?.detail?.contains("10000") == true)
            #expect(reader.bufferedCount <= 10_000 + 2 * 4096)
            #expect(await stream.receives <= 4)
        }

        @Test func aLineOfExactlyTheLimitIsAccepted() async throws {
            let line = String(repeating: "x", count: 100)
            for ending in ["\n", "\r\n"] {
                let bytes = Array((line + ending + line + "y" + ending).utf8)
                let reader = BufferedReader(ScriptedStream(bytes, cutAt: [50, 101]))
                #expect(try await reader.readLine(maxLength: 100) == line)
                await expectTorusError(.frameTooLong) { try await reader.readLine(maxLength: 100) }
            }
        }

        // MARK: Length prefixes

        @Test func lengthPrefixedFramesOfEveryWidthAndOrderSplitEverywhere() async throws {
            let payloads: [[UInt8]] = [[], [1], Array(0..<200), [7, 7, 7], []]
            for width in [1, 2, 4, 8] {
                for bigEndian in [true, false] {
                    let bytes = Self.lengthPrefixed(payloads, width: width, bigEndian: bigEndian)
                    let framing = Framing.lengthPrefixed(width: width, byteOrder: bigEndian ? .bigEndian : .littleEndian, maxLength: 255)
                    for cuts in Self.cuttings(of: bytes) {
                        let reader = BufferedReader(ScriptedStream(bytes, cutAt: cuts))
                        let frames = try await Self.readAll(reader) { try await $0.readFrame(framing) }
                        #expect(frames == payloads, "width \(width) big-endian \(bigEndian) cut at \(cuts)")
                    }
                }
            }
        }

        @Test func aLengthPrefixOverTheLimitFailsBeforeThePayloadArrives() async throws {
            // The prefix says 16 MiB; nothing more is sent: the reader must not wait for it.
            let stream = ScriptedStream([[0x01, 0x00, 0x00, 0x00]])
            let reader = BufferedReader(stream)
            let error = await expectTorusError(.frameTooLong) {
                try await reader.readFrame(.lengthPrefixed(width: 4, maxLength: 1 << 20))
            }
            #expect(error?.detail?.contains("16777216") == true)
            #expect(await stream.receives == 1)
        }

        @Test func theStreamEndingInsideAFrameIsATruncatedFrame() async throws {
            let cases: [(Framing, [UInt8])] = [
                (.lengthPrefixed(width: 2, maxLength: 100), [0, 5, 1, 2]),
                (.lengthPrefixed(width: 4, maxLength: 100), [0, 0]),
                (.exactly(4), [1, 2, 3]),
                (.delimited(by: [0x0D, 0x0A]), Array("no ending\r".utf8)),
            ]
            for (framing, bytes) in cases {
                let reader = BufferedReader(ScriptedStream([bytes]))
                let error = await expectTorusError(.truncatedFrame) { try await reader.readFrame(framing) }
                #expect(error?.detail?.contains("\(bytes.count) bytes") == true, "\(framing)")
            }
            // At a frame boundary the end is just the end.
            let reader = BufferedReader(ScriptedStream([[0, 1, 9]]))
            #expect(try await reader.readFrame(.lengthPrefixed(width: 2, maxLength: 10)) == [9])
            #expect(try await reader.readFrame(.lengthPrefixed(width: 2, maxLength: 10)) == nil)
        }

        // MARK: Exact counts and delimiters

        @Test func readExactlyAndReadUntilSplitEverywhere() async throws {
            let bytes = Array("HEAD1234GET / HTTP/1.1\r\nHost: x\r\n\r\nbody!".utf8)
            for cuts in Self.cuttings(of: bytes) {
                let reader = BufferedReader(ScriptedStream(bytes, cutAt: cuts))
                #expect(try await reader.readExactly(4) == Array("HEAD".utf8), "cut at \(cuts)")
                #expect(try await reader.readExactly(4) == Array("1234".utf8), "cut at \(cuts)")
                #expect(try await reader.readUntil(Array("\r\n\r\n".utf8)) == Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "cut at \(cuts)")
                #expect(try await reader.readUntil(0x21) == Array("body!".utf8), "cut at \(cuts)")
                #expect(try await reader.readExactly(1) == nil)
            }
        }

        @Test func readUntilCountsTheDelimiterInItsLimit() async throws {
            let reader = BufferedReader(ScriptedStream([Array("abc;abcd;".utf8)]))
            #expect(try await reader.readUntil(0x3B, maxLength: 4) == Array("abc;".utf8))
            await expectTorusError(.frameTooLong) { try await reader.readUntil(0x3B, maxLength: 4) }
        }

        // MARK: Decoders

        /// Type-length-value records: a type byte, a length byte, the value; type 0 is invalid.
        struct RecordDecoder: FrameDecoder {
            struct Record: Equatable { var type: UInt8; var value: [UInt8] }
            let maxFrameLength = 257
            var decoded = 0
            mutating func decode(_ bytes: UnsafeRawBufferPointer) throws -> (frame: Record, consumed: Int)? {
                guard bytes.count >= 2 else { return nil }
                guard bytes[0] != 0 else { throw TorusError(.malformedFrame, operation: .read, detail: "type 0") }
                let length = Int(bytes[1])
                guard bytes.count >= 2 + length else { return nil }
                decoded += 1
                return (Record(type: bytes[0], value: Array(bytes[2..<(2 + length)])), 2 + length)
            }
        }

        @Test func aDecoderOfOnesOwnSplitEverywhere() async throws {
            let records = [RecordDecoder.Record(type: 1, value: [1, 2, 3]), .init(type: 2, value: []), .init(type: 9, value: Array(repeating: 5, count: 40))]
            let bytes = records.flatMap { [$0.type, UInt8($0.value.count)] + $0.value }
            for cuts in Self.cuttings(of: bytes) {
                var decoded: [RecordDecoder.Record] = []
                for try await record in ScriptedStream(bytes, cutAt: cuts).frames(using: RecordDecoder()) { decoded.append(record) }
                #expect(decoded == records, "cut at \(cuts)")
            }
        }

        @Test func aDecodersErrorEndsTheReadAndItsStateCarriesOver() async throws {
            let reader = BufferedReader(ScriptedStream([[1, 1, 42, 0, 0]]))
            var decoder = RecordDecoder()
            #expect(try await reader.readFrame(using: &decoder) == .init(type: 1, value: [42]))
            #expect(decoder.decoded == 1)
            await expectTorusError(.malformedFrame) { try await reader.readFrame(using: &decoder) }
        }

        // MARK: Zero copy, receive, appending

        @Test func framesWithinOneReceiveAreLentInPlaceAndSpanningOnesAreGathered() async throws {
            // Two whole lines in the first receive, the third split over two.
            let stream = ScriptedStream([Array("one\ntwo\nthr".utf8), Array("ee\n".utf8)])
            let reader = BufferedReader(stream)
            var inPlace: [Bool] = []
            var lines: [String] = []
            while let line = try await reader.withNextFrame(.line(), { bytes in
                (String(decoding: bytes, as: UTF8.self), UInt(bitPattern: bytes.baseAddress))
            }) {
                lines.append(line.0)
                inPlace.append(await stream.handedOut(line.1))
            }
            #expect(lines == ["one", "two", "three"])
            #expect(inPlace == [true, true, false])
        }

        @Test func forEachFrameLendsEveryFrameUntilTheEnd() async throws {
            let bytes = Self.lengthPrefixed([[1], [2, 2], [], [3, 3, 3]], width: 2, bigEndian: true)
            for cuts in Self.cuttings(of: bytes) {
                let reader = BufferedReader(ScriptedStream(bytes, cutAt: cuts))
                var frames: [[UInt8]] = []
                try await reader.forEachFrame(.lengthPrefixed(width: 2, maxLength: 8)) { frames.append(Array($0)) }
                #expect(frames == [[1], [2, 2], [], [3, 3, 3]], "cut at \(cuts)")
            }
        }

        @Test func readingInsideAFramesBodyIsAConcurrentRead() async throws {
            let reader = BufferedReader(ScriptedStream([Array("a\nb\n".utf8)]))
            let result = try await reader.withNextFrame(.line()) { _ in
                await torusError { try await reader.readLine() }?.kind
            }
            #expect(result == .concurrentRead)
            #expect(try await reader.readLine() == "b")
        }

        @Test func receiveAndAppendingReadsHandOutWhatTheReaderHoldsFirst() async throws {
            let reader = BufferedReader(ScriptedStream([Array("head\nrest".utf8), Array("-more".utf8), Array("tail".utf8)]))
            #expect(try await reader.readLine() == "head")
            let rest = try #require(try await reader.receive()?.array)
            #expect(rest == Array("rest".utf8))
            var buffer: [UInt8] = [0x3E]
            #expect(try await reader.read(appendingTo: &buffer, maxBytes: 3) == 3)
            #expect(try await reader.read(appendingTo: &buffer) == 2)
            #expect(buffer == Array(">-more".utf8))
            #expect(try await reader.readExactly(2) == Array("ta".utf8))
            #expect(try await reader.receive()?.array == Array("il".utf8))
            #expect(try await reader.receive()?.array == nil)
            #expect(try await reader.read(appendingTo: &buffer) == 0)
        }

        @Test func aStreamErrorReachesTheReader() async throws {
            let failure = TorusError(.connectionReset, operation: .read)
            let reader = BufferedReader(ScriptedStream([Array("partial".utf8)], endingWith: failure))
            await expectTorusError(.connectionReset) { try await reader.readLine() }
        }
    }
}
