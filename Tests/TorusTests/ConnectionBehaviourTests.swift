import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// The rules of one connection: one reader at a time, queued writers, timeouts, and what
    /// closing and shutting down do to later and pending calls.
    @Suite(.noDescriptorLeaks)
    struct ConnectionBehaviourTests {
        // MARK: Concurrent readers and writers

        @Test func secondConcurrentReadThrowsConcurrentRead() async throws {
            let (client, server) = try await connectedPair()
            let first = await startPendingRead(on: client)

            let error = await expectTorusError(.concurrentRead) { try await client.read() }
            #expect(error?.operation == .read)
            #expect(error?.detail?.isEmpty == false)

            // The first read was not disturbed by the refused second one.
            try await server.write("for the first reader")
            #expect(try await first.value == Array("for the first reader".utf8))
            await client.close()
            await server.close()
        }

        @Test func concurrentWritesFromEightTasksArriveUninterleaved() async throws {
            // Small send buffer: each 64 KiB block takes several sends, so writers really
            // overlap and interleaving would show.
            let (client, server) = try await connectedPair(options: ConnectionOptions(sendBufferSize: 16 * 1024))
            let blockSize = 64 * 1024
            let writers = 8

            async let received = server.read(exactly: blockSize * writers)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        // Block `writer` is 64 KiB of the byte writer+1.
                        try await client.write([UInt8](repeating: UInt8(writer + 1), count: blockSize))
                    }
                }
                try await group.waitForAll()
            }
            let stream = try await received

            var seen: Set<UInt8> = []
            for block in 0..<writers {
                let slice = stream[(block * blockSize)..<((block + 1) * blockSize)]
                let value = slice.first!
                let contiguous = slice.withUnsafeBytes { isUniform($0, value) }
                #expect(contiguous, "block \(block) (value \(value)) is interleaved with another write")
                seen.insert(value)
            }
            #expect(seen == Set((1...UInt8(writers))), "every writer's block arrived exactly once")

            await client.close()
            #expect(try await server.read() == nil)
            await server.close()
        }

        @Test func vectoredWriteSendsBuffersInOrder() async throws {
            let (client, server) = try await connectedPair()
            let parts = [randomBytes(10), [], randomBytes(70_000), randomBytes(1), randomBytes(300_000)]
            async let received = server.read(exactly: parts.reduce(0) { $0 + $1.count })
            try await client.write(contentsOf: parts)
            expectSameBytes(try await received, parts.flatMap { $0 })
            await client.close()
            await server.close()
        }

        // MARK: Timeouts

        @Test func readTimesOutOnSilentPeerAndConnectionStillWorks() async throws {
            let (client, server) = try await connectedPair()
            let start = ContinuousClock.now
            let error = await expectTorusError(.timedOut) { try await client.read(timeout: .milliseconds(100)) }
            let elapsed = ContinuousClock.now - start
            #expect(error?.operation == .read)
            #expect(elapsed >= .milliseconds(90), "timed out early: \(elapsed)")
            #expect(elapsed < .seconds(5))

            // The peer sends afterwards: a read gets it, and the connection works both ways.
            try await server.write("late but welcome")
            #expect(try await client.read(timeout: .seconds(5)) == Array("late but welcome".utf8))
            try await client.write("thanks")
            #expect(try await server.read() == Array("thanks".utf8))
            await client.close()
            await server.close()
        }

        @Test func readWithTimeoutReturnsDataThatArrivesInTime() async throws {
            let (client, server) = try await connectedPair()
            async let read = client.read(timeout: .seconds(10))
            try await server.write("on time")
            #expect(try await read == Array("on time".utf8))
            await client.close()
            await server.close()
        }

        @Test func writeTimesOutWhenPeerNeverReads() async throws {
            let (connection, peer) = try await connectToRawPeer()
            defer { peer.close() }
            let start = ContinuousClock.now
            let error = await expectTorusError(.timedOut) {
                try await connection.write([UInt8](repeating: 0, count: 64 << 20), timeout: .milliseconds(200))
            }
            #expect(error?.operation == .write)
            #expect(ContinuousClock.now - start < .seconds(5))
            await connection.close()
        }

        // MARK: Closing and shutting down

        @Test func writeAfterCloseThrowsConnectionClosed() async throws {
            let (client, server) = try await connectedPair()
            await client.close()
            #expect(await !client.isOpen)
            let error = await expectTorusError(.connectionClosed) { try await client.write("too late") }
            #expect(error?.operation == .write)
            await expectTorusError(.connectionClosed) { try await client.write(contentsOf: [[1, 2, 3]]) }
            #expect(try await server.read() == nil)
            await server.close()
        }

        @Test func writeAfterShutdownOfWriteSideThrowsConnectionClosed() async throws {
            let (client, server) = try await connectedPair()
            try await client.shutdown(.write)
            await expectTorusError(.connectionClosed) { try await client.write("too late") }
            // Shutting down the write side leaves the connection open for reading.
            #expect(await client.isOpen)
            #expect(try await server.read() == nil)
            try await server.write("still readable")
            #expect(try await client.read() == Array("still readable".utf8))
            await client.close()
            await server.close()
        }

        @Test func readAfterCloseThrowsConnectionClosed() async throws {
            let (client, server) = try await connectedPair()
            try await server.write("never read")
            await client.close()
            let error = await expectTorusError(.connectionClosed) { try await client.read() }
            #expect(error?.operation == .read)
            await expectTorusError(.connectionClosed) { try await client.shutdown(.write) }
            await server.close()
        }

        @Test func closingTwiceIsHarmless() async throws {
            let (client, server) = try await connectedPair()
            await client.close()
            await client.close()
            #expect(await !client.isOpen)
            await server.close()
            await server.close()
        }

        @Test func pendingReadEndsWithConnectionClosedWhenAnotherTaskCloses() async throws {
            let (client, server) = try await connectedPair()
            let reader = await startPendingRead(on: client)
            let start = ContinuousClock.now
            await client.close()
            await expectTorusError(.connectionClosed) { try await reader.value }
            #expect(ContinuousClock.now - start < .seconds(2))
            #expect(try await server.read() == nil)
            await server.close()
        }

        @Test func pendingWriteEndsWithConnectionClosedWhenAnotherTaskCloses() async throws {
            let (connection, peer) = try await connectToRawPeer()
            defer { peer.close() }
            let writer = Task { try await connection.write([UInt8](repeating: 3, count: 64 << 20)) }
            #expect(peer.poll(POLLIN, milliseconds: 5000) & Int16(POLLIN) != 0)
            await connection.close()
            await expectTorusError(.connectionClosed) { try await writer.value }
        }

        /// A write made of many sends (the peer keeps draining) is interrupted by close():
        /// it must end with `.connectionClosed` and must never send again on the closed
        /// descriptor's number, which the process may already have reused for another socket.
        /// The test reuses that number at once (dup2) to catch such a send. Repeated, because
        /// close() can land at any point of the write loop. Exposes bug 2 in /tmp/brief/BUGS.md.
        @Test func closeDuringActiveWriteEndsItWithConnectionClosedAndNeverTouchesTheReusedDescriptor() async throws {
            let payload = [UInt8](repeating: 5, count: 256 << 20)
            for round in 0..<10 {
                let (connection, peer) = try await connectToRawPeer()
                let received = POSIXSemaphore()
                async let drained = onPOSIXThread { () -> Int in
                    var total = 0
                    var signalled = false
                    while let chunk = try? peer.receive(), !chunk.isEmpty {
                        total += chunk.count
                        if !signalled, total >= 1 << 20 { signalled = true; received.post() }
                    }
                    if !signalled { received.post() }
                    return total
                }
                let writer = Task { try await connection.write(payload) }
                // Blocking wait, on purpose short: the write is under way once 1 MiB arrived.
                _ = received.wait(milliseconds: 10_000)

                let before = OpenDescriptors.current()
                await connection.close()
                let freed = Set(before.keys).subtracting(OpenDescriptors.current().keys)
                // Reuse the freed number for an unrelated socket, as a busy server would.
                var pair: [CInt] = [-1, -1]
                #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
                let reused = try #require(freed.count == 1 ? freed.first : nil, "close() freed \(freed)")
                #expect(dup2(pair[0], reused) == reused)

                // The write must end now; if it is still sending into the reused socket, it
                // would block there (nobody reads it), so give it a bound.
                let outcome = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
                    group.addTask { await writer.result }
                    group.addTask { try? await EventLoopGroup.shared.next().sleep(for: .seconds(2)); return nil }
                    let first = await group.next()!
                    group.cancelAll()
                    return first
                }
                var stray = [UInt8](repeating: 0, count: 65536)
                let strayCount = recv(pair[1], &stray, stray.count, Int32(MSG_DONTWAIT))
                close(reused)
                close(pair[0])
                close(pair[1])
                _ = await writer.result
                Glibc.shutdown(peer.fd, Int32(SHUT_RDWR))
                let delivered = await drained
                peer.close()

                #expect(strayCount <= 0, "round \(round): \(strayCount) bytes of the closed connection's write went to an unrelated socket that reused its descriptor")
                guard let outcome else {
                    Issue.record("round \(round): the write did not end within 2 s of close()")
                    break
                }
                if case .success = outcome {
                    // The send in flight when close() came was already writing the rest in
                    // the kernel (a blocking send in io_uring's worker, past cancelling) and
                    // finished: then every byte must have reached the peer.
                    #expect(delivered == payload.count, "round \(round): the write succeeded but the peer got \(delivered) of \(payload.count) bytes")
                    continue
                }
                guard case .failure(let error) = outcome, let error = error as? TorusError, error.kind == .connectionClosed else {
                    Issue.record("round \(round): expected TorusError .connectionClosed from the interrupted write, got \(outcome)")
                    break
                }
                if strayCount > 0 { break }
            }
        }

        @Test func shutdownOfReadSideEndsLocalReads() async throws {
            let (client, server) = try await connectedPair()
            try await client.shutdown(.read)
            #expect(try await client.read() == nil)
            // Writing still works.
            try await client.write("one way")
            #expect(try await server.read() == Array("one way".utf8))
            await client.close()
            await server.close()
        }

        // MARK: Addresses and options

        @Test func connectionsReportTheirAddresses() async throws {
            let (client, server) = try await connectedPair()
            #expect(client.remoteAddress == server.localAddress)
            #expect(server.remoteAddress == client.localAddress)
            #expect(client.localAddress.port != 0)
            await client.close()
            await server.close()
        }

        @Test func socketOptionsCanBeSetAndRead() async throws {
            let (client, server) = try await connectedPair()
            try await client.setNoDelay(false)
            try await client.setNoDelay(true)
            try await client.setKeepAlive(.init(idle: .seconds(30), interval: .seconds(5), count: 3))
            try await client.setKeepAlive(nil)
            await expectTorusError(.invalidArgument) {
                try await client.setKeepAlive(.init(idle: .zero, interval: .seconds(1), count: 1))
            }
            try await client.setSendBufferSize(64 * 1024)
            try await client.setReceiveBufferSize(64 * 1024)
            // Linux doubles the requested size for bookkeeping.
            #expect(try await client.sendBufferSize() >= 64 * 1024)
            #expect(try await client.receiveBufferSize() >= 64 * 1024)
            await client.close()
            await expectTorusError(.connectionClosed) { try await client.setNoDelay(true) }
            await server.close()
        }
    }
}

/// Whether every byte of `raw` is `value` (memcmp against a filled buffer: fast in debug builds).
func isUniform(_ raw: UnsafeRawBufferPointer, _ value: UInt8) -> Bool {
    let pattern = [UInt8](repeating: value, count: raw.count)
    return pattern.withUnsafeBytes { memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }
}
