import Testing
@_spi(Fuzzing) import TorusTLS

extension TorusTests {
    /// The session code of TLSStream over memory (the `Fuzzing` SPI that Fuzz/FuzzTLSRecords
    /// drives): the seam works, and what the fuzzer found stays fixed.
    @Suite
    struct TLSMemorySessionTests {
        let certificates = TestCertificates.shared

        /// A client and a server session and the bytes between them.
        final class Pair {
            let client: TLSMemorySession
            let server: TLSMemorySession
            var toServer: [UInt8] = []
            var toClient: [UInt8] = []
            /// When set, the side's connection has ended: end of stream once its bytes are read.
            var clientInputEnded = false

            init(client: TLSContext, server: TLSContext) throws {
                self.client = try TLSMemorySession(context: client, serverName: "localhost")
                self.server = try TLSMemorySession(context: server)
            }

            /// Everything pending for the server, in `size`-byte receives.
            func receiveAtServer(size: Int = .max) -> TLSMemorySession.Arrival {
                guard !toServer.isEmpty else { return .nothing }
                let chunk = Array(toServer.prefix(size))
                toServer.removeFirst(chunk.count)
                return .bytes(chunk)
            }

            func receiveAtClient(size: Int = .max) -> TLSMemorySession.Arrival {
                guard !toClient.isEmpty else { return clientInputEnded ? .endOfStream : .nothing }
                let chunk = Array(toClient.prefix(size))
                toClient.removeFirst(chunk.count)
                return .bytes(chunk)
            }

            func move() {
                toServer += client.takeSent()
                toClient += server.takeSent()
            }

            /// Both handshakes, with every receive `size` bytes.
            func handshake(size: Int = .max) throws {
                for _ in 0..<100_000 where !(client.isEstablished && server.isEstablished) {
                    _ = try client.handshake { receiveAtClient(size: size) }
                    move()
                    _ = try server.handshake { receiveAtServer(size: size) }
                    move()
                }
            }

            func read(_ session: TLSMemorySession, size: Int = 64 * 1024, _ receive: () -> TLSMemorySession.Arrival) throws -> [UInt8]? {
                // What the session sent while reading (an alert, too) goes out even when it throws.
                defer { move() }
                var buffer = [UInt8](repeating: 0, count: size)
                let result = try buffer.withUnsafeMutableBytes { try session.read(into: $0, receive) }
                switch result {
                case .bytes(let count): return Array(buffer[..<count])
                case .endOfStream: return nil
                case .waiting: return []
                }
            }
        }

        func pair(maximumVersion: TLSConfiguration.Version = .tls13) async throws -> Pair {
            try Pair(client: try await certificates.clientContext { $0.maximumVersion = maximumVersion },
                     server: try await certificates.serverContext())
        }

        @Test(arguments: [TLSConfiguration.Version.tls12, .tls13])
        func bytesDeliveredOneAtATimeArriveIntact(version: TLSConfiguration.Version) async throws {
            let pair = try await pair(maximumVersion: version)
            try pair.handshake(size: 1)
            #expect(pair.client.protocolVersion == (version == .tls13 ? 13 : 12))
            let message = Array("hello over memory".utf8)
            try message.withUnsafeBytes { try pair.client.write($0, queued: false) }
            pair.move()
            var received: [UInt8] = []
            while received.count < message.count {
                received += try pair.read(pair.server, size: 3) { pair.receiveAtServer(size: 1) } ?? []
            }
            #expect(received == message)
            pair.client.sendCloseNotify(queued: true)
            pair.move()
            #expect(try pair.read(pair.server) { pair.receiveAtServer() } == nil)
        }

        /// Found by FuzzTLSRecords: a read that returned bytes and then met the peer's fatal
        /// alert keeps the alert's error for the next read; a write in between failed with
        /// "protocol violation: OpenSSL error 6" (OpenSSL refuses to write on a failed
        /// connection, with an empty error queue and SSL_ERROR_ZERO_RETURN), not with the alert.
        @Test func aWriteAfterTheReadMetAFatalAlertFailsWithThatAlert() async throws {
            let pair = try await pair()
            try pair.handshake()
            // The client writes, then its connection ends early: its read fails (truncated) and
            // OpenSSL sends the server a fatal alert, right behind the data.
            let message = Array("request".utf8)
            try message.withUnsafeBytes { try pair.client.write($0, queued: true) }
            pair.clientInputEnded = true
            #expect(throws: TLSError.self) { try pair.read(pair.client) { pair.receiveAtClient() } }
            // Data and alert in one receive: the read returns the data.
            #expect(try pair.read(pair.server) { pair.receiveAtServer() } == message)
            let writeError = #expect(throws: TLSError.self) {
                try Array("answer".utf8).withUnsafeBytes { try pair.server.write($0, queued: true) }
            }
            #expect(writeError?.kind == .alertReceived, "\(String(describing: writeError))")
            #expect(writeError?.step == .write)
            let readError = #expect(throws: TLSError.self) { try pair.read(pair.server) { pair.receiveAtServer() } }
            #expect(readError?.kind == .alertReceived, "\(String(describing: readError))")
        }

        @Test(arguments: [TLSConfiguration.Version.tls12, .tls13])
        func aSideThatReadTheClosingNotifyStillWrites(version: TLSConfiguration.Version) async throws {
            let pair = try await pair(maximumVersion: version)
            try pair.handshake()
            pair.client.sendCloseNotify(queued: false)
            pair.move()
            #expect(try pair.read(pair.server) { pair.receiveAtServer() } == nil)
            // Half-closed: the server's answer still reaches the client.
            let answer = Array("last words".utf8)
            try answer.withUnsafeBytes { try pair.server.write($0, queued: false) }
            pair.move()
            #expect(try pair.read(pair.client) { pair.receiveAtClient() } == answer)
        }
    }
}
