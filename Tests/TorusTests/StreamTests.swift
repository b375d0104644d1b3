import Testing
import Torus

extension TorusTests {
    /// The stream layer over real connections: readers in a `Server` handler, a connection
    /// as a sequence of chunks, appending reads, and a reader's timeout.
    @Suite(.noDescriptorLeaks)
    struct StreamTests {
        /// A line server as the README shows it: upper-cases every line it reads.
        static func upperCaseLines(_ connection: isolated Connection) async throws {
            for try await line in connection.lines() {
                try await connection.send(line.uppercased() + "\n")
            }
        }

        @Test func aLineServerInAHandlerAnswersLinesSentInAwkwardPieces() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener)
            let serving = Task { try await server.run(Self.upperCaseLines) }
            let client = try await Connection.connect(to: listener.localAddress)
            let text = (0..<500).map { "line \($0) of the test\r\n" }.joined()
            let bytes = Array(text.utf8)
            // Pieces of 1 to 97 bytes, so lines are split everywhere across receives.
            var offset = 0
            var size = 1
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                try await client.write(Array(bytes[offset..<end]))
                offset = end
                size = size % 97 + 1
            }
            try await client.shutdown(.write)
            let answer = try await client.readToEnd()
            #expect(String(decoding: answer, as: UTF8.self) == text.uppercased().replacingCRLF())
            await client.close()
            server.shutdown()
            try await serving.value
        }

        @Test func aReaderOnAConnectionReadsHeadersThenABody() async throws {
            let (client, server) = try await connectedPair()
            try await client.write("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
            let (head, body) = try await server.withIsolation { connection in
                let reader = BufferedReader(connection)
                let head = try await reader.readUntil(Array("\r\n\r\n".utf8))
                let body = try await reader.readExactly(5)
                return (head, body)
            }
            #expect(head == Array("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n".utf8))
            #expect(body == Array("hello".utf8))
            await client.close()
            await server.close()
        }

        @Test func aConnectionIsASequenceOfChunksEndedByEndOfStream() async throws {
            let (client, server) = try await connectedPair()
            let payload = randomBytes(300_000, seed: 3)
            async let sent: Void = {
                try await client.write(payload)
                try await client.shutdown(.write)
            }()
            var received: [UInt8] = []
            for try await chunk in server { received += chunk }
            try await sent
            expectSameBytes(received, payload)
            await client.close()
            await server.close()
        }

        @Test func readAppendingToKeepsWhatDoesNotFitForTheNextRead() async throws {
            let (client, server) = try await connectedPair()
            try await client.write("0123456789")
            try await client.shutdown(.write)
            var buffer: [UInt8] = Array(">".utf8)
            var total = 0
            while true {
                let count = try await server.read(appendingTo: &buffer, maxBytes: 3)
                if count == 0 { break }
                #expect(count <= 3)
                total += count
            }
            #expect(total == 10)
            #expect(buffer == Array(">0123456789".utf8))
            await client.close()
            await server.close()
        }

        @Test func aReadersTimeoutCoversTheWholeFrame() async throws {
            let (client, server) = try await connectedPair()
            // Half a line, then silence: the read ends at its timeout, not at each receive's.
            try await client.write("half a li")
            let start = ContinuousClock.now
            let error = await server.withIsolation { connection in
                let reader = BufferedReader(connection)
                return await torusError { try await reader.readLine(timeout: .milliseconds(200)) }
            }
            #expect(error?.kind == .timedOut)
            #expect(ContinuousClock.now - start < .seconds(5))
            await client.close()
            await server.close()
        }
    }
}

extension String {
    /// The string with every "\r\n" made "\n" (Swift sees "\r\n" as one character).
    fileprivate func replacingCRLF() -> String {
        String(self.map { $0 == "\r\n" ? "\n" : $0 })
    }
}
