import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Cancelling a task ends its pending accept, connect, read or write promptly with
    /// `CancellationError`, and leaves the socket usable (or at least closable).
    @Suite(.noDescriptorLeaks)
    struct CancellationTests {
        /// Cancelling must take effect well within this.
        static let prompt: Duration = .seconds(2)

        @Test func cancellingPendingAcceptThrowsCancellationErrorAndListenerStaysUsable() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let acceptor = Task {
                for try await connection in listener {
                    await connection.close()
                    throw TestFailure("accepted a connection nobody made")
                }
            }
            try await letTaskReachItsWait()
            let start = ContinuousClock.now
            acceptor.cancel()
            await #expect(throws: CancellationError.self) { try await acceptor.value }
            #expect(ContinuousClock.now - start < Self.prompt)

            // Still accepting: a new connection arrives through accept().
            async let accepted = listener.accept()
            let client = try await Connection.connect(to: listener.localAddress)
            let server = try #require(try await accepted)
            try await client.write("still here")
            #expect(try await server.read() == Array("still here".utf8))
            await client.close()
            await server.close()
            await listener.close()
        }

        @Test func cancellingPendingConnectThrowsCancellationError() async throws {
            let target = try UnresponsiveListener()
            defer { target.close() }
            let connector = Task {
                try await Connection.connect(to: .ipv4(.loopback, port: target.port))
            }
            try await letTaskReachItsWait()
            let start = ContinuousClock.now
            connector.cancel()
            await #expect(throws: CancellationError.self) { _ = try await connector.value }
            #expect(ContinuousClock.now - start < Self.prompt)

            // Connecting elsewhere still works.
            try await withEchoServer { address in
                let connection = try await Connection.connect(to: address)
                try await connection.write("ok")
                #expect(try await connection.read() == Array("ok".utf8))
                await connection.close()
            }
        }

        @Test func cancellingPendingReadThrowsCancellationErrorAndConnectionStaysUsable() async throws {
            let (client, server) = try await connectedPair()
            let reader = await startPendingRead(on: client)
            let start = ContinuousClock.now
            reader.cancel()
            await #expect(throws: CancellationError.self) { _ = try await reader.value }
            #expect(ContinuousClock.now - start < Self.prompt)

            // No data was lost or consumed: what the peer sends next arrives intact, both ways.
            try await server.write("after the cancel")
            #expect(try await client.read() == Array("after the cancel".utf8))
            try await client.write("reply")
            #expect(try await server.read() == Array("reply".utf8))
            await client.close()
            await server.close()
        }

        @Test func cancellingPendingWriteThrowsCancellationErrorAndConnectionCloses() async throws {
            let (connection, peer) = try await connectToRawPeer()
            defer { peer.close() }
            let writer = Task {
                // Far more than the socket buffers hold while the peer does not read.
                try await connection.write([UInt8](repeating: 1, count: 64 << 20))
            }
            // The peer receiving bytes shows the write is under way; it cannot finish.
            #expect(peer.poll(POLLIN, milliseconds: 5000) & Int16(POLLIN) != 0)
            let start = ContinuousClock.now
            writer.cancel()
            await #expect(throws: CancellationError.self) { try await writer.value }
            #expect(ContinuousClock.now - start < Self.prompt)

            // The write lock was released, and the stream has a gap where the rest of the
            // cancelled write should be: a new write is refused at once, saying why.
            let refused = ContinuousClock.now
            let error = await expectTorusError(.incompleteWrite) {
                try await connection.write([UInt8](repeating: 2, count: 64 << 20))
            }
            #expect(error?.detail?.contains("of \(64 << 20) bytes were written") == true, "\(String(describing: error))")
            #expect(ContinuousClock.now - refused < Self.prompt)
            await expectTorusError(.incompleteWrite) { try await connection.send("more") }
            await connection.close()
            #expect(await !connection.isOpen)
        }

        @Test func cancellingQueuedWriterLeavesTheWriterAheadOfItToFinish() async throws {
            // Small buffers on both sides, so the first write cannot finish while the peer
            // does not read.
            let (connection, peer) = try await connectToRawPeer(
                options: ConnectionOptions(sendBufferSize: 32 * 1024), peerReceiveBufferSize: 32 * 1024)
            defer { peer.close() }
            let blockSize = 4 << 20
            let first = Task { try await connection.write([UInt8](repeating: 1, count: blockSize)) }
            #expect(peer.poll(POLLIN, milliseconds: 5000) & Int16(POLLIN) != 0)
            // Queued behind the first: cancelling it must not disturb the first.
            let second = Task { try await connection.write([UInt8](repeating: 2, count: blockSize)) }
            try await letTaskReachItsWait()
            second.cancel()
            await #expect(throws: CancellationError.self) { try await second.value }

            // The peer drains the stream to its end: exactly the first block, nothing of the
            // second.
            async let drained = onPOSIXThread { () -> Result<Int, POSIXError> in
                var total = 0
                while true {
                    let chunk: [UInt8]
                    do { chunk = try peer.receive() } catch let error as POSIXError { return .failure(error) } catch { fatalError() }
                    if chunk.isEmpty { return .success(total) }
                    if chunk.contains(where: { $0 != 1 }) { return .failure(POSIXError("received bytes of the cancelled write", errno: EPROTO)) }
                    total += chunk.count
                }
            }
            try await first.value
            await connection.close()
            #expect(try await drained.get() == blockSize)
        }

        @Test func cancellingTaskBeforeItReadsThrowsCancellationErrorWithoutTouchingTheSocket() async throws {
            let (client, server) = try await connectedPair()
            try await server.write("waiting")
            let reader = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.read()
            }
            await #expect(throws: CancellationError.self) { _ = try await reader.value }
            #expect(try await client.read() == Array("waiting".utf8))
            await client.close()
            await server.close()
        }
    }
}
