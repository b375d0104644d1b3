import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// The ends of a stream: an orderly half-close, and a reset by the peer.
    @Suite(.noDescriptorLeaks)
    struct HalfCloseAndResetTests {
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
