import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

/// Holds received buffers without consuming them, the way a slow reader would.
/// (`ReceivedBytes` is `~Copyable`, so it cannot go in an array directly.)
final class HeldBuffers: @unchecked Sendable {
    // @unchecked Sendable: handed from one task to another, never used by two at once.
    private final class Slot {
        let copy: [UInt8]
        var bytes: ReceivedBytes?
        init(_ bytes: consuming ReceivedBytes) {
            copy = bytes.array
            self.bytes = consume bytes
        }
    }
    private var slots: [Slot] = []

    func hold(_ bytes: consuming ReceivedBytes) { slots.append(Slot(bytes)) }

    /// The held bytes, in order, as one array.
    var contents: [UInt8] {
        slots.flatMap(\.copy)
    }

    var count: Int { slots.count }

    /// Drops every buffer: each goes back to its loop's ring.
    func dropAll() { slots.removeAll() }
}

extension TorusTests {
    @Suite(.noDescriptorLeaks)
    struct ReceiveBufferTests {
        /// A loop with few, small receive buffers, so that tests can exhaust them.
        static func smallBufferGroup(count: Int = 32, perConnection: Int = 8) throws -> EventLoopGroup {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferCount = count
            configuration.receiveBufferSize = 4096
            configuration.receiveBuffersPerConnection = perConnection
            return try EventLoopGroup(loopCount: 1, configuration: configuration)
        }

        /// A connected pair on `loop`: (the client side, the accepted side).
        static func pair(on loop: EventLoop, listener: Listener) async throws -> (Connection, Connection) {
            let client = try await Connection.connect(to: listener.localAddress, on: loop)
            let server = try #require(try await listener.accept())
            return (client, server)
        }

        struct UnexpectedEndOfStream: Error {}

        /// The next received bytes; end of stream is an error here.
        static func receiveSome(_ connection: Connection) async throws -> ReceivedBytes {
            guard let bytes = try await connection.receive() else { throw UnexpectedEndOfStream() }
            return bytes
        }

        /// Reads until `count` bytes arrived.
        static func readExactly(_ count: Int, from connection: Connection) async throws -> [UInt8] {
            var received: [UInt8] = []
            while received.count < count {
                let bytes = try #require(try await connection.read(), "stream ended after \(received.count) of \(count) bytes")
                received += bytes
            }
            return received
        }

        @Test func receivedBytesRelayedToAnotherConnectionArriveIntactAndFreeTheirBuffers() async throws {
            // A tiny ring: if relaying kept buffers, the 1 MiB below could not get through.
            let group = try Self.smallBufferGroup(count: 8, perConnection: 4)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (source, sourcePeer) = try await Self.pair(on: loop, listener: listener)
            let (sinkPeer, sink) = try await Self.pair(on: loop, listener: listener)

            let payload = randomBytes(1 << 20)
            async let sent: Void = { try await source.write(payload); try await source.shutdown(.write) }()
            async let arrived = sink.readToEnd()
            await sourcePeer.withIsolation { sourcePeer in
                while let bytes = try? await sourcePeer.receive() {
                    try? await sinkPeer.write(bytes)
                }
                try? await sinkPeer.shutdown(.write)
            }
            try await sent
            expectSameBytes(try await arrived, payload, "the relayed bytes")
            for connection in [source, sourcePeer, sink, sinkPeer] { await connection.close() }
            await listener.close()
            await group.shutdown()
        }

        @Test func slowReaderHoldingItsShareDoesNotStarveOtherConnections() async throws {
            let group = try Self.smallBufferGroup(count: 32, perConnection: 8)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)

            let (slowClient, slowServer) = try await Self.pair(on: loop, listener: listener)
            let payload = randomBytes(1 << 20)
            let writer = Task { try await slowClient.write(payload) }

            // The slow reader takes buffers and keeps them: it can never hold more than its
            // share, so the other 24 buffers stay available.
            let held = HeldBuffers()
            for _ in 0..<8 {
                held.hold(try await Self.receiveSome(slowServer))
            }

            // Meanwhile another connection on the same loop works normally.
            let (fastClient, fastServer) = try await Self.pair(on: loop, listener: listener)
            let message = randomBytes(200_000)
            async let sent: Void = fastClient.write(message)
            let echoedToServer = try await Self.readExactly(message.count, from: fastServer)
            try await sent
            expectSameBytes(echoedToServer, message, "the fast connection's bytes")

            // Once the slow reader lets go, it gets everything, in order.
            var received = held.contents
            held.dropAll()
            received += try await Self.readExactly(payload.count - received.count, from: slowServer)
            expectSameBytes(received, payload, "the slow connection's bytes")
            try await writer.value

            for connection in [slowClient, slowServer, fastClient, fastServer] { await connection.close() }
            await listener.close()
            await group.shutdown()
        }

        @Test func receivingResumesWhenBuffersComeBackAfterTheLoopRanOut() async throws {
            // Two readers holding their full share take every buffer of the loop.
            let group = try Self.smallBufferGroup(count: 16, perConnection: 8)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            var pairs: [(Connection, Connection)] = []
            let holders = [HeldBuffers(), HeldBuffers()]
            var writers: [Task<Void, any Error>] = []
            for holder in holders {
                let (client, server) = try await Self.pair(on: loop, listener: listener)
                pairs.append((client, server))
                let payload = randomBytes(256 * 1024)
                writers.append(Task { try await client.write(payload) })
                for _ in 0..<8 { holder.hold(try await Self.receiveSome(server)) }
            }

            // A third connection now finds no buffer (ENOBUFS) ...
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            let message = randomBytes(1000)
            try await client.write(message)
            let reader = Task { try await Self.readExactly(message.count, from: server) }

            // ... and receives as soon as buffers come back, with no timer and no restart.
            // (The first reader is closed first: otherwise it would take its share back.)
            await pairs[0].1.close()
            holders[0].dropAll()
            expectSameBytes(try await reader.value, message, "bytes received after buffers came back")

            holders[1].dropAll()
            for (pairClient, pairServer) in pairs {
                await pairClient.close()
                await pairServer.close()
            }
            for writer in writers { _ = await writer.result }  // ended by the close
            await client.close()
            await server.close()
            await listener.close()
            await group.shutdown()
        }

        @Test func buffersDroppedOnAnotherThreadGoBackToTheRing() async throws {
            let group = try Self.smallBufferGroup(count: 8, perConnection: 8)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            let payload = randomBytes(512 * 1024)
            let writer = Task { try await client.write(payload) }

            var received: [UInt8] = []
            // Take every buffer of the loop, then drop them from a thread of the global pool:
            // the returns travel to the loop, and receiving goes on.
            for _ in 0..<4 {
                let held = HeldBuffers()
                for _ in 0..<8 {
                    guard received.count + held.contents.count < payload.count else { break }
                    held.hold(try await Self.receiveSome(server))
                }
                received += held.contents
                await Task.detached { held.dropAll() }.value
            }
            received += try await Self.readExactly(payload.count - received.count, from: server)
            expectSameBytes(received, payload)
            try await writer.value

            await client.close()
            await server.close()
            await listener.close()
            await group.shutdown()
        }

        @Test func smallReadsConsumeAReceivedBufferPieceByPieceInOrder() async throws {
            let group = try Self.smallBufferGroup()
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            let payload = randomBytes(50_000)
            let writer = Task { try await client.write(payload) }

            // read(into:) takes a pointer, so it is called isolated to the connection.
            let received = try await server.withIsolation { server in
                var received: [UInt8] = []
                let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 7, alignment: 1)
                defer { scratch.deallocate() }
                while received.count < payload.count {
                    if received.count % 2 == 0 {
                        received += try #require(try await server.read(maxBytes: 13))
                    } else {
                        let count = try await server.read(into: scratch)
                        #expect(count > 0)
                        received += scratch[..<count]
                    }
                }
                return received
            }
            expectSameBytes(received, payload)
            try await writer.value

            await client.close()
            await server.close()
            await listener.close()
            await group.shutdown()
        }

        @Test func receiveReturnsNilAtEndOfStreamAfterTheLastBytes() async throws {
            let group = try Self.smallBufferGroup()
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let (client, server) = try await Self.pair(on: loop, listener: listener)
            try await client.write("last words")
            try await client.shutdown(.write)

            var received: [UInt8] = []
            while let bytes = try await server.receive() {
                received += bytes.array
            }
            #expect(received == Array("last words".utf8))
            let again = try await server.receive()
            let stillEnded = switch consume again { case .none: true; case .some: false }
            #expect(stillEnded, "end of stream stays the end")

            await client.close()
            await server.close()
            await listener.close()
            await group.shutdown()
        }
    }
}
