import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// `Connection.send(_:)`: received buffers queued for sending without a copy or a wait,
    /// gathered into one `sendmsg` while one is in flight, in order with the other writes.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(1)))
    struct QueuedSendTests {
        /// A loop with a small ring, so that a buffer the outbox failed to give back would
        /// stop the transfer.
        static func smallBufferGroup() throws -> EventLoopGroup {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferCount = 8
            configuration.receiveBufferSize = 4096
            configuration.receiveBuffersPerConnection = 4
            return try EventLoopGroup(loopCount: 1, configuration: configuration)
        }

        static func pair(on loop: EventLoop, listener: Listener) async throws -> (Connection, Connection) {
            let client = try await Connection.connect(to: listener.localAddress, on: loop)
            let server = try #require(try await listener.accept())
            return (client, server)
        }

        /// Echoes with `send` until end of stream, then closes (which lets the queue drain).
        static func sendEcho(_ connection: Connection) async {
            await connection.withIsolation { connection in
                while let bytes = try? await connection.receive() {
                    try? await connection.send(bytes)
                }
                await connection.close()
            }
        }

        @Test func echoBySendReturnsEveryByteInOrderAndGivesEveryBufferBack() async throws {
            let group = try Self.smallBufferGroup()
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            async let echoing: Void = Self.sendEcho(server)

            // 2 MiB through a ring of eight 4 KiB buffers: it only gets through if every sent
            // buffer goes back to the ring.
            let payload = randomBytes(2 << 20)
            async let echoed = client.readToEnd()
            try await client.write(payload)
            try await client.shutdown(.write)
            expectSameBytes(try await echoed, payload, "the echo")
            await echoing
            await client.close()
            await listener.close()
            await group.shutdown()
        }

        @Test func sendsAndWritesGoOutInTheOrderTheyWereMade() async throws {
            // Small socket buffers on both sides, so queued sends are still in flight when the
            // final write is made: it must wait for them, not pass them.
            let (client, peer) = try await connectToRawPeer(peerReceiveBufferSize: 4096)
            try await client.setSendBufferSize(4096)
            let (source, sourcePeer) = try await connectedPair()
            let payload = randomBytes(1 << 20)
            async let fed: Void = { try await source.write(payload); try await source.shutdown(.write) }()
            // A blocking reader on a plain thread, off Swift's cooperative pool.
            async let received = onPOSIXThread { () -> [UInt8]? in
                var all: [UInt8] = []
                while true {
                    guard let chunk = try? peer.receive(maxBytes: 4096) else { return nil }
                    if chunk.isEmpty { return all }
                    all += chunk
                }
            }
            let relayed = await client.withIsolation { client -> Bool in
                do {
                    try await client.write(Array("<".utf8))
                    while let bytes = try await sourcePeer.receive() {
                        try await client.send(bytes)
                    }
                    try await client.write(Array(">".utf8))
                    try await client.shutdown(.write)
                    return true
                } catch {
                    return false
                }
            }
            #expect(relayed)
            try await fed
            let stream = try #require(await received, "the peer's receive failed")
            expectSameBytes(stream, Array("<".utf8) + payload + Array(">".utf8), "the relayed stream")
            for connection in [client, source, sourcePeer] { await connection.close() }
            peer.close()
        }

        @Test func closeRightAfterSendStillDeliversTheQueuedBytes() async throws {
            let (client, server) = try await connectedPair()
            let payload = randomBytes(300_000)
            async let written: Void = { try await client.write(payload); try await client.shutdown(.write) }()
            async let echoed = client.readToEnd()
            // The server closes the moment its peer's stream ends, with sends still queued.
            await Self.sendEcho(server)
            try await written
            expectSameBytes(try await echoed, payload, "bytes sent before close")
            await client.close()
        }

        @Test func aFailedSendIsReportedByFlushAsConnectionReset() async throws {
            let (connection, peer) = try await connectToRawPeer()
            try peer.sendAll(Array("data".utf8))
            try peer.setLingerZero()
            let outcome = await connection.withIsolation { connection -> TorusError.Kind? in
                guard let bytes = try? await connection.receive() else { return nil }
                peer.close()   // sends RST
                // The reset reaches the read side first; then the queued send must fail.
                while (try? await connection.receive()) != nil {}
                do {
                    try await connection.send(bytes)
                    try await connection.flush()
                    return nil
                } catch let error as TorusError {
                    return error.kind
                } catch {
                    return nil
                }
            }
            #expect(outcome == .connectionReset)
            await connection.close()
        }

        @Test func sendAfterCloseIsRefusedWithConnectionClosed() async throws {
            let group = try Self.smallBufferGroup()
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            try await client.write(randomBytes(100))
            let kind = await server.withIsolation { server -> TorusError.Kind? in
                guard let bytes = try? await server.receive() else { return nil }
                await server.close()
                do {
                    try await server.send(bytes)
                    return nil
                } catch let error as TorusError {
                    return error.kind
                } catch {
                    return nil
                }
            }
            #expect(kind == .connectionClosed)
            // The refused buffer went back: the same small ring still carries a new connection.
            let (client2, server2) = try await Self.pair(on: loop, listener: listener)
            let payload = randomBytes(64 * 1024)
            async let written: Void = { try await client2.write(payload); try await client2.shutdown(.write) }()
            expectSameBytes(try await server2.readToEnd(), payload, "bytes on the same ring")
            try await written
            for connection in [client, client2, server2] { await connection.close() }
            await listener.close()
            await group.shutdown()
        }
    }
}
