import MetricsTestKit
import Synchronization
import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// The serve helper: graceful shutdown, the connection limit, timeouts, loops, metrics.
    @Suite(.noDescriptorLeaks)
    struct ServerTests {
        /// Handlers that have read their request when the shutdown begins still write their
        /// whole response (connections drain: reads end, writes go on), then end; the listener
        /// is closed.
        @Test func gracefulShutdownLetsRunningHandlersFinishTheirWrites() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: .seconds(60)))
            let response = randomBytes(1 << 20, seed: 11)
            let requests = Tally()
            let respond = Gate()
            let finished = Atomic<Int>(0)
            let running = Task {
                try await server.run { connection in
                    guard try await connection.read() != nil else { return }
                    requests.increment()
                    await respond.wait()  // The response is written only after the shutdown began.
                    try await connection.write(response)
                    finished.add(1, ordering: .relaxed)
                }
            }
            var clients: [Connection] = []
            for _ in 0..<4 {
                let client = try await Connection.connect(to: listener.localAddress)
                try await client.write("go")
                clients.append(client)
            }
            await requests.wait(untilAtLeast: clients.count)

            server.shutdown()
            #expect(server.isShuttingDown)
            respond.open()
            for client in clients {
                expectSameBytes(try await client.readToEnd(), response, "response")
                await client.close()
            }
            try await running.value
            #expect(finished.load(ordering: .relaxed) == 4, "every handler wrote its whole response")
            #expect(server.connectionCount == 0)
            let refused = await torusError { try await Connection.connect(to: listener.localAddress) }
            #expect(refused?.kind == .connectionRefused, "the listener is closed")
        }

        /// Cancelling the task that runs the server is a graceful shutdown, not a cancellation
        /// of the handlers: an echo handler still answers the bytes it had received, then
        /// finds end of stream (the connection drains) and returns normally.
        @Test func cancellingTheServingTaskShutsDownGracefully() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: .seconds(60)))
            let (accepted, accept) = AsyncStream.makeStream(of: Connection.self)
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let resume = Gate()
            let running = Task {
                try await server.run { connection in
                    accept.yield(connection)
                    await resume.wait()
                    do {
                        while let bytes = try await connection.read() {
                            try await connection.write(bytes)
                        }
                        outcome.yield("end of stream")
                    } catch {
                        outcome.yield(error is CancellationError ? "cancelled" : "\(error)")
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress)
            var connections = accepted.makeAsyncIterator()
            let served = try #require(await connections.next())
            try await client.write("still here")

            // The drain reaches the connection's loop soon after, not necessarily before the
            // next line runs (the serving task may enter its cancellation handler later, under
            // load): it is checked once the handler has seen its effect, end of stream.
            running.cancel()
            resume.open()
            #expect(try await client.read(exactly: 10) == Array("still here".utf8))
            #expect(try await client.read() == nil, "the server closed the connection after the handler ended")
            var results = outcomes.makeAsyncIterator()
            #expect(await results.next() == "end of stream", "the handler was not cancelled")
            #expect(await served.isDraining)
            await client.close()
            try await running.value
            #expect(server.isShuttingDown)
        }

        @Test func connectionLimitHolds() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(maxConnections: 2))
            let (started, handlerStarted) = AsyncStream.makeStream(of: Void.self)
            let concurrent = Atomic<Int>(0)
            let mostConcurrent = Atomic<Int>(0)
            let served = Atomic<Int>(0)
            let running = Task {
                try await server.run { connection in
                    let now = concurrent.add(1, ordering: .relaxed).newValue
                    mostConcurrent.max(now, ordering: .relaxed)
                    handlerStarted.yield()
                    // Serve until the client says it is done.
                    while let bytes = try await connection.read() { try await connection.write(bytes) }
                    concurrent.subtract(1, ordering: .relaxed)
                    served.add(1, ordering: .relaxed)
                }
            }
            var clients: [Connection] = []
            for _ in 0..<5 {
                // Past the limit, the kernel still completes the handshake (backlog).
                let client = try await Connection.connect(to: listener.localAddress)
                try await client.write("x")
                clients.append(client)
            }
            var starts = started.makeAsyncIterator()
            for _ in 0..<2 { await starts.next() }
            // Nothing to await for a handler that must not start: give a wrongly started one
            // time to show up.
            try await EventLoopGroup.shared.next().sleep(for: .milliseconds(200))
            #expect(concurrent.load(ordering: .relaxed) == 2)
            #expect(server.connectionCount == 2)

            // Each client that finishes lets one more in.
            for client in clients {
                #expect(try await client.read(exactly: 1) == Array("x".utf8), "served in turn")
                try await client.shutdown(.write)
                #expect(try await client.read() == nil)
                await client.close()
            }
            server.shutdown()
            try await running.value
            #expect(served.load(ordering: .relaxed) == 5)
            #expect(mostConcurrent.load(ordering: .relaxed) == 2)
        }

        @Test func idleTimeoutClosesIdleConnectionsAndOnlyThose() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(idleTimeout: .milliseconds(300)))
            let (endings, ending) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    do {
                        while let bytes = try await connection.read() { try await connection.write(bytes) }
                        ending.yield("end of stream")
                    } catch let error as TorusError {
                        ending.yield("\(error.kind)")
                    }
                }
            }
            let idle = try await Connection.connect(to: listener.localAddress)
            let busy = try await Connection.connect(to: listener.localAddress)
            let clock = ContinuousClock()
            let start = clock.now
            // The busy client talks every 50 ms for well over twice the idle timeout.
            while clock.now - start < .milliseconds(900) {
                try await busy.write("ping")
                #expect(try await busy.read(exactly: 4) == Array("ping".utf8))
                try await EventLoopGroup.shared.next().sleep(for: .milliseconds(50))
            }
            #expect(try await idle.read() == nil, "the idle connection was closed")
            var results = endings.makeAsyncIterator()
            #expect(await results.next() == "timed out", "the idle handler's read timed out")

            try await busy.shutdown(.write)
            #expect(try await busy.read() == nil)
            #expect(await results.next() == "end of stream")
            await busy.close()
            await idle.close()
            server.shutdown()
            try await running.value
        }

        /// A response that fits the kernel's send buffer leaves the connection's own counters
        /// still while a slow reader drains it, for longer than the idle timeout: the kernel's
        /// counts (bytes acknowledged) show it is not idle, so it stays open and the reader's
        /// next request is answered. (The reader is a plain socket: a Torus client would take
        /// the bytes into its loop's buffers at once, however slowly its handler reads.)
        @Test func idleTimeoutSparesASlowReaderTheKernelIsStillServing() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let idleTimeout: Duration = .milliseconds(300)
            let server = Server(listener: listener, configuration: .init(idleTimeout: idleTimeout))
            let response = randomBytes(256 * 1024, seed: 31)
            let running = Task {
                try await server.run { connection in
                    // Big enough for the whole response: the write returns at once.
                    try connection.setSendBufferSize(1 << 20)
                    while try await connection.read() != nil { try await connection.write(response) }
                }
            }
            let port = listener.localAddress.port!
            let outcome = await onPOSIXThread { () -> Result<[Int], any Error> in
                Result {
                    // A small receive window: the response drains only as fast as this reads.
                    let client = try RawSocket.connected(toLoopbackPort: port, receiveBufferSize: 16 * 1024)
                    defer { client.close() }
                    var drainTimes: [Int] = []
                    for _ in 0..<2 {
                        try client.sendAll(Array("next".utf8))
                        let start = ContinuousClock.now
                        var received: [UInt8] = []
                        while received.count < response.count {
                            // 4 KiB every 20 ms: about 1.3 s for the response, 4 idle timeouts.
                            let bytes = try client.receive(maxBytes: 4096)
                            guard !bytes.isEmpty else { break }
                            received += bytes
                            usleep(20_000)
                        }
                        // Cut short: the server closed it; the count below says so.
                        guard received == response else { break }
                        drainTimes.append(Int((ContinuousClock.now - start) / .milliseconds(1)))
                    }
                    return drainTimes
                }
            }
            let drainTimes = try outcome.get()
            #expect(drainTimes.count == 2 && drainTimes.allSatisfy { $0 > 2 * 300 }, "both responses whole, each drained over more than two idle timeouts: \(drainTimes) ms")
            server.shutdown()
            try await running.value
        }

        /// A peer that stops reading while the server writes moves nothing, not even in the
        /// kernel (its window is shut): the idle timeout closes it and ends the blocked write.
        @Test func idleTimeoutClosesAPeerThatStoppedReading() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let idleTimeout: Duration = .milliseconds(300)
            let server = Server(listener: listener, configuration: .init(idleTimeout: idleTimeout))
            let (endings, ending) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    do {
                        guard try await connection.read() != nil else { return }
                        let chunk = [UInt8](repeating: 7, count: 1 << 20)
                        while true { try await connection.write(chunk) }
                    } catch let error as TorusError {
                        ending.yield("\(error.operation): \(error.kind)")
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 16 * 1024))
            let start = ContinuousClock.now
            try await client.write("flood")
            var results = endings.makeAsyncIterator()
            #expect(await results.next() == "write: timed out")
            #expect(ContinuousClock.now - start < idleTimeout * 10)
            await client.close()
            server.shutdown()
            try await running.value
        }

        @Test func readAndWriteTimeoutsApplyToEveryCall() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let configuration = Server.Configuration(readTimeout: .milliseconds(100), writeTimeout: .milliseconds(200))
            let server = Server(listener: listener, configuration: configuration)
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    do {
                        guard let request = try await connection.read() else { return }
                        if request == Array("flood".utf8) {
                            // The client never reads: the kernel buffers fill, then the write
                            // times out.
                            let chunk = [UInt8](repeating: 1, count: 1 << 20)
                            while true { try await connection.write(chunk) }
                        }
                        _ = try await connection.read()   // nothing more comes
                    } catch let error as TorusError {
                        outcome.yield("\(error.operation): \(error.kind)")
                    }
                }
            }
            var results = outcomes.makeAsyncIterator()
            let reader = try await Connection.connect(to: listener.localAddress)
            try await reader.write("hello")
            #expect(await results.next() == "read: timed out")

            let flooded = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 4096))
            try await flooded.write("flood")
            #expect(await results.next() == "write: timed out")
            await reader.close()
            await flooded.close()
            server.shutdown()
            try await running.value
        }

        @Test func connectionsAreSpreadOverTheGroupsLoops() async throws {
            let group = try EventLoopGroup(loopCount: 2)
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), group: group)
            #expect(listener.connectionLoops == group.loops)
            let server = Server(listener: listener)
            let (loops, servedOn) = AsyncStream.makeStream(of: Int.self)
            let running = Task {
                try await server.run { connection in
                    // The handler runs on the connection's loop.
                    #expect(connection.eventLoop.isInEventLoop)
                    servedOn.yield(connection.eventLoop.index)
                    while try await connection.read() != nil {}
                }
            }
            var clients: [Connection] = []
            for _ in 0..<4 { clients.append(try await Connection.connect(to: listener.localAddress)) }
            var indices: [Int] = []
            var iterator = loops.makeAsyncIterator()
            for _ in clients { indices.append(await iterator.next()!) }
            #expect(indices.sorted() == [0, 0, 1, 1], "each loop serves every other connection")
            for client in clients { await client.close() }
            server.shutdown()
            try await running.value
            await group.shutdown()
        }

        @Test func oneServerServesListenersOnEveryLoopWithOneConnectionLimit() async throws {
            let group = try EventLoopGroup(loopCount: 2)
            let listeners = try await Listener.perLoop(bindingTo: .ipv4(.loopback, port: 0), group: group)
            #expect(listeners.map(\.eventLoop) == group.loops)
            #expect(Set(listeners.map(\.localAddress)).count == 1, "one port for all")
            let server = Server(listeners: listeners, configuration: .init(maxConnections: 2))
            let concurrent = Atomic<Int>(0)
            let mostConcurrent = Atomic<Int>(0)
            let loopsUsed = AnnotatedMutex<Set<Int>>([])
            let running = Task {
                try await server.run { connection in
                    #expect(connection.eventLoop.isInEventLoop)
                    loopsUsed.withLock { _ = $0.insert(connection.eventLoop.index) }
                    mostConcurrent.max(concurrent.add(1, ordering: .relaxed).newValue, ordering: .relaxed)
                    defer { concurrent.subtract(1, ordering: .relaxed) }
                    while let bytes = try await connection.read() { try await connection.write(bytes) }
                }
            }
            // The kernel picks a socket per connection by a hash of its addresses: with 32,
            // both loops get some (all on one: a chance of 2 in 2^32).
            try await withThrowingTaskGroup(of: Void.self) { clients in
                for _ in 0..<32 {
                    clients.addTask {
                        let client = try await Connection.connect(to: listeners[0].localAddress)
                        try await client.write("x")
                        #expect(try await client.read(exactly: 1) == Array("x".utf8))
                        try await client.shutdown(.write)
                        #expect(try await client.read() == nil)
                        await client.close()
                    }
                }
                try await clients.waitForAll()
            }
            server.shutdown()
            try await running.value
            #expect(mostConcurrent.load(ordering: .relaxed) <= 2)
            #expect(loopsUsed.withLock { $0 } == [0, 1])
            await group.shutdown()
        }

        @Test func metricsCountConnectionsBytesAndErrors() async throws {
            let metrics = TestMetrics()
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(metricsFactory: metrics))
            let running = Task {
                try await server.run { connection in
                    while let bytes = try await connection.read() { try await connection.write(bytes) }
                }
            }
            for _ in 0..<3 {
                let client = try await Connection.connect(to: listener.localAddress)
                try await client.write([UInt8](repeating: 7, count: 100))
                #expect(try await client.read(exactly: 100).count == 100)
                try await client.shutdown(.write)
                #expect(try await client.read() == nil)
                await client.close()
            }
            // A peer that resets: its handler ends with an error.
            let resetting = try RawSocket.connected(toLoopbackPort: listener.localAddress.port!)
            try resetting.sendAll([1])
            #expect(try resetting.receive() == [1])
            try resetting.setLingerZero()
            resetting.close()
            // Wait for the handler to end (a connection closed), without a timer.
            while server.connectionCount > 0 { await Task.yield() }

            server.shutdown()
            try await running.value
            let dimensions = [("listener", "\(listener.localAddress)")]
            #expect(try metrics.expectCounter("torus.connections.accepted", dimensions).totalValue == 4)
            #expect(try metrics.expectCounter("torus.connections.closed", dimensions).totalValue == 4)
            #expect(try metrics.expectMeter("torus.connections.active", dimensions).lastValue == 0)
            #expect(try metrics.expectCounter("torus.bytes.received", dimensions).totalValue == 301)
            #expect(try metrics.expectCounter("torus.bytes.sent", dimensions).totalValue == 301)
            let resets = try metrics.expectCounter("torus.connection.errors", dimensions + [("kind", "connection reset by peer")])
            #expect(resets.totalValue == 1)
        }
    }
}

