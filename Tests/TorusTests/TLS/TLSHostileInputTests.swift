import Testing
import Torus
import TorusTLS
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Garbage, oversized records, truncated and reset handshakes: each ends its own
    /// connection with a clear error, and nothing else is disturbed.
    @Suite(.noDescriptorLeaks)
    struct TLSHostileInputTests {
        let certificates = TestCertificates.shared

        /// Runs a server handshake against `bytes` from a raw peer and returns its error.
        func serverHandshakeError(after bytes: [UInt8], then ending: RawEnding = .shutdown) async throws -> (any Error)? {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let port = listener.localAddress.port!
            let peer = try RawSocket.connected(toLoopbackPort: port)
            guard let connection = try await listener.accept() else { throw TestFailure("no connection") }
            await listener.close()
            let stream = try TLSStream(serverOn: connection, context: try await certificates.serverContext())
            try peer.sendAll(bytes)
            switch ending {
            case .shutdown: peer.shutdownWrite()
            case .reset:
                try peer.setLingerZero()
                peer.close()
            case .stayOpen: break
            }
            var result: (any Error)?
            do { try await stream.handshake(timeout: .seconds(5)) } catch { result = error }
            await stream.close()
            if ending != .reset { peer.close() }
            return result
        }

        enum RawEnding { case shutdown, reset, stayOpen }

        @Test func randomBytesAreNotTLS() async throws {
            let error = try await serverHandshakeError(after: randomBytes(4096, seed: 7))
            let tlsError = error as? TLSError
            #expect(tlsError?.kind == .notTLS || tlsError?.kind == .protocolViolation, "\(String(describing: error))")
        }

        @Test func aRecordOverTheLimitIsAProtocolViolation() async throws {
            // A handshake record that claims 65,535 bytes: more than any TLS record may hold.
            let error = try await serverHandshakeError(after: [0x16, 0x03, 0x01, 0xFF, 0xFF] + randomBytes(200, seed: 1), then: .stayOpen)
            let tlsError = expectTLSError(error, .protocolViolation)
            #expect(tlsError?.description.contains("over the limit") == true, "\(String(describing: tlsError))")
        }

        @Test func aHandshakeCutShortIsTruncated() async throws {
            // A record header and part of a ClientHello, then end of stream.
            let error = try await serverHandshakeError(after: [0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xFC, 0x03, 0x03])
            expectTLSError(error, .truncated)
        }

        @Test func aResetDuringTheHandshakeIsAConnectionReset() async throws {
            let error = try await serverHandshakeError(after: [0x16, 0x03, 0x01, 0x01, 0x00, 0x01], then: .reset)
            #expect((error as? TorusError)?.kind == .connectionReset || (error as? TLSError)?.kind == .truncated,
                    "\(String(describing: error))")
        }

        @Test func aServerKeepsServingWhileHostileClientsComeAndGo() async throws {
            try await withTLSServer(try await certificates.serverContext(), handshakeTimeout: .seconds(2)) { port in
                let client = try await certificates.clientContext()
                let good = try await TLSStream.connect(host: "localhost", port: port, context: client)
                let hostile: [[UInt8]] = [
                    randomBytes(4096, seed: 11),
                    Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8),
                    [0x16, 0x03, 0x01, 0xFF, 0xFF] + randomBytes(64, seed: 2),
                    [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
                ]
                for bytes in hostile {
                    // Each hostile client is answered (an alert at most) and closed by the server.
                    let answer = try await onPOSIXThread { () -> Result<[UInt8], any Error> in
                        Result {
                            let peer = try RawSocket.connected(toLoopbackPort: port)
                            defer { peer.close() }
                            try peer.sendAll(bytes)
                            var received: [UInt8] = []
                            while true {
                                let chunk = try peer.receive()
                                if chunk.isEmpty { return received }
                                received += chunk
                            }
                        }
                    }.get()
                    // Nothing but alert records (content type 21) comes back, if anything.
                    #expect(answer.isEmpty || answer[0] == 21, "\(answer.prefix(16))")
                }
                // The connection opened before them still works, and so does a new one.
                try await good.send("still here\n")
                #expect(try await BufferedReader(good).readLine() == "still here")
                await good.close()
                let fresh = try await TLSStream.connect(host: "localhost", port: port, context: client)
                try await fresh.send("and here\n")
                #expect(try await BufferedReader(fresh).readLine() == "and here")
                await fresh.close()
            }
        }
    }
}
