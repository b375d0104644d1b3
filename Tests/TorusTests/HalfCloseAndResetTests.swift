import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// The ends of a stream: an orderly half-close, and a reset by the peer.
    @Suite(.noDescriptorLeaks)
    struct HalfCloseAndResetTests {
        @Test func shutdownRacingCloseNeverShutsDownTheSocketThatReusesTheDescriptor() async throws {
            // Found by the chaos soak (tcp-proxy): a shutdown still queued when the connection
            // closed hit whichever socket got the descriptor number next.
            try await withEchoServer { address in
                for _ in 0..<100 {
                    let connection = try await Connection.connect(to: address)
                    let reused: CInt = await connection.withIsolation { connection in
                        let shutting = Task { try? await connection.shutdown(.write) }
                        await Task.yield()
                        await connection.close()
                        // The lowest free number: the one the connection had.
                        let reused = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                        // Whatever the shutdown was going to do, it has done now.
                        _ = await shutting.value
                        return reused
                    }
                    defer { Glibc.close(reused) }
                    var peer = RawSocket.loopbackAddress(port: address.port!)
                    let connected = withUnsafePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(reused, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                    #expect(connected == 0)
                    var byte: UInt8 = 42
                    let sent = send(reused, &byte, 1, Int32(MSG_NOSIGNAL))
                    #expect(sent == 1, "the new socket's write side is open")
                    if sent == 1 { #expect(recv(reused, &byte, 1, 0) == 1, "and the echo comes back") }
                }
            }
        }

        @Test func halfCloseLetsServerReplyAfterClientFinishesWriting() async throws {
            let (client, server) = try await connectedPair()
            let request = randomBytes(300_000)
            let reply = randomBytes(200_000)

            async let serverSide: [UInt8] = {
                // The server sees the whole request, then end of stream, and only then replies.
                let received = try await server.readToEnd()
                try await server.write(reply)
                await server.close()
                return received
            }()

            try await client.write(request)
            try await client.shutdown(.write)
            // The read side still works after shutting down the write side.
            let receivedReply = try await client.read(exactly: reply.count)
            #expect(try await client.read() == nil, "end of stream after the full reply")
            #expect(try await client.read() == nil, "end of stream stays end of stream")
            await client.close()

            expectSameBytes(try await serverSide, request, "request")
            expectSameBytes(receivedReply, reply, "reply")
        }

        @Test func peerResetSurfacesAsConnectionResetOnRead() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let peer = try RawSocket.connected(toLoopbackPort: listener.localAddress.port!)
            let connection = try #require(try await listener.accept())
            await listener.close()

            try peer.sendAll(Array("before the reset".utf8))
            #expect(try await connection.read() == Array("before the reset".utf8))

            try peer.setLingerZero()
            peer.close()   // sends RST
            let error = await expectTorusError(.connectionReset) { try await connection.read() }
            #expect(error?.operation == .read)
            #expect(error?.errno == ECONNRESET)

            // Writing to the reset connection fails the same way, without SIGPIPE.
            await withDefaultSIGPIPE {
                await expectTorusError(.connectionReset) { try await connection.write("after the reset") }
            }
            await connection.close()
        }

        @Test func pendingReadEndsWithConnectionResetWhenPeerResets() async throws {
            let (connection, peer) = try await connectToRawPeer()
            let reader = await startPendingRead(on: connection)
            try peer.setLingerZero()
            peer.close()
            await expectTorusError(.connectionReset) { try await reader.value }
            await connection.close()
        }

        @Test func writingToResetPeerThrowsConnectionResetInsteadOfRaisingSIGPIPE() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let peer = try RawSocket.connected(toLoopbackPort: listener.localAddress.port!)
            let connection = try #require(try await listener.accept())
            await listener.close()
            try peer.setLingerZero()
            peer.close()

            // No read first: the write itself must notice the reset. With SIGPIPE's default
            // action in force, a send without MSG_NOSIGNAL would kill the test process.
            await withDefaultSIGPIPE {
                let block = [UInt8](repeating: 7, count: 64 * 1024)
                let error = await torusError {
                    for _ in 0..<1000 { try await connection.write(block) }
                }
                #expect(error?.kind == .connectionReset, "\(String(describing: error))")
                #expect(error?.operation == .write)
                #expect(error?.errno == ECONNRESET || error?.errno == EPIPE)
            }
            await connection.close()
        }

        @Test func orderlyCloseByPeerIsEndOfStreamNotAnError() async throws {
            let (connection, peer) = try await connectToRawPeer()
            try peer.sendAll(Array("last words".utf8))
            peer.close()
            #expect(try await connection.readToEnd() == Array("last words".utf8))
            #expect(try await connection.read() == nil)
            await connection.close()
        }
    }
}

/// Runs `body` with SIGPIPE's default action (terminate the process) in force, then restores
/// the previous disposition, so that a test proves the code under test never raises SIGPIPE
/// even if the test runner ignores it.
func withDefaultSIGPIPE(_ body: () async throws -> Void) async rethrows {
    var previous = sigaction()
    var defaultAction = sigaction()
    defaultAction.__sigaction_handler.sa_handler = SIG_DFL
    sigaction(SIGPIPE, &defaultAction, &previous)
    defer { sigaction(SIGPIPE, &previous, nil) }
    try await body()
}
