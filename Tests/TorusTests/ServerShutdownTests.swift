import Synchronization
import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// A server's graceful shutdown as its handlers see it: every connection drains (reads
    /// end with end of stream once what arrived is handed out; writes go on), so idle
    /// keep-alive connections end at once, and handlers that ignore it are cancelled when the
    /// grace period ends.
    @Suite(.noDescriptorLeaks)
    struct ServerShutdownTests {
        /// How a test starts the shutdown.
        enum Trigger: String, CaseIterable, Sendable {
            case method, cancellation
        }

        /// Which read the handler waits in.
        enum Read: String, CaseIterable, Sendable {
            case receive, readArray, readInto

            /// Reads once the way this case says; nil at end of stream.
            func once(_ connection: isolated Connection) async throws -> [UInt8]? {
                switch self {
                case .receive:
                    guard let bytes = try await connection.receive() else { return nil }
                    return bytes.withUnsafeBytes { Array($0) }
                case .readArray:
                    return try await connection.read()
                case .readInto:
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
                    defer { buffer.deallocate() }
                    let count = try await connection.read(into: buffer)
                    return count == 0 ? nil : Array(buffer.prefix(count))
                }
            }
        }

        /// An echo handler waiting idle in a read, with a 30 s grace period: the shutdown ends
        /// its read with end of stream at once, the handler returns normally (it is not
        /// cancelled), the server closes the connection, and `run` returns long before the
        /// grace period is over.
        @Test(arguments: Trigger.allCases, Read.allCases)
        func anIdleKeepAliveConnectionEndsAtOnce(trigger: Trigger, read: Read) async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let gracePeriod = Duration.seconds(30)
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: gracePeriod))
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    do {
                        var drainingWhileServing = false
                        while let bytes = try await read.once(connection) {
                            drainingWhileServing = drainingWhileServing || connection.isDraining
                            try await connection.write(bytes)
                        }
                        outcome.yield("end of stream, draining: \(connection.isDraining), before: \(drainingWhileServing)")
                    } catch {
                        outcome.yield("\(error)")
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress)
            // A round trip: the handler is now idle in its next read.
            try await client.write("ping")
            #expect(try await client.read(exactly: 4) == Array("ping".utf8))

            let start = ContinuousClock.now
            switch trigger {
            case .method: server.shutdown()
            case .cancellation: running.cancel()
            }
            var results = outcomes.makeAsyncIterator()
            #expect(await results.next() == "end of stream, draining: true, before: false")
            #expect(try await client.read() == nil, "the server closed the connection")
            try await running.value
            let took = ContinuousClock.now - start
            // Not a speed test: without the drain, this takes the whole 30 s grace period.
            #expect(took < gracePeriod / 6, "shutdown took \(took) with an idle connection open")
            #expect(server.connectionCount == 0)
            await client.close()
        }

        /// Bytes the client sent before the shutdown began, while the handler was not
        /// reading, are all handed to the handler before its end of stream: whether its
        /// receive had already taken them (it was armed by a first read, and took them
        /// in, copying out those past its share of two 1 KiB buffers) or they were still in
        /// the kernel's socket buffer (nothing had read yet, so no receive was armed).
        @Test(arguments: [true, false])
        func bytesSentBeforeTheShutdownAreStillReceived(readFirst: Bool) async throws {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferSize = 1024
            configuration.receiveBuffersPerConnection = 2
            let group = try EventLoopGroup(loopCount: 1, configuration: configuration)
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: group.loops[0])
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: .seconds(30)))
            let (accepted, accept) = AsyncStream.makeStream(of: Connection.self)
            let (outcomes, outcome) = AsyncStream.makeStream(of: [UInt8].self)
            let resume = Gate()
            let running = Task {
                try await server.run { connection in
                    if readFirst {
                        guard try await connection.read() != nil else { return }
                    }
                    accept.yield(connection)
                    await resume.wait()  // not reading while the client sends and the shutdown begins
                    var received: [UInt8] = []
                    while let bytes = try await connection.receive() {
                        bytes.withUnsafeBytes { received.append(contentsOf: $0) }
                    }
                    outcome.yield(received)
                }
            }
            let client = try await Connection.connect(to: listener.localAddress)
            if readFirst { try await client.write("hello") }
            var connections = accepted.makeAsyncIterator()
            let served = try #require(await connections.next())
            // 32 KiB: far more than the handler's share of receive buffers (2 KiB), well within
            // the kernel's socket buffers, so that once the write returns (loopback) they are
            // all on the server's side.
            let payload = randomBytes(32 * 1024, seed: 13)
            try await client.write(payload)

            server.shutdown()
            // A hop to the connection's loop, queued behind the drain the shutdown sent there.
            #expect(await served.isDraining, "the shutdown put the connection in the draining state")
            resume.open()
            var results = outcomes.makeAsyncIterator()
            expectSameBytes(try #require(await results.next()), payload, "what the handler received after the shutdown began")
            #expect(try await client.read() == nil, "the server closed the connection after the handler ended")
            try await running.value
            await client.close()
            await group.shutdown()
        }

        /// A handler in the middle of writing a response when the shutdown begins finishes the
        /// write (the client gets every byte), then finds end of stream and returns; it is
        /// not cancelled.
        @Test func aHandlerInTheMiddleOfAWriteFinishesIt() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: .seconds(60)))
            let response = randomBytes(16 << 20, seed: 17)
            let (accepted, accept) = AsyncStream.makeStream(of: Connection.self)
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    try connection.setSendBufferSize(64 * 1024)
                    guard try await connection.read() != nil else { return }
                    accept.yield(connection)
                    do {
                        try await connection.write(response)
                        let next = try await connection.read()
                        outcome.yield(next == nil ? "wrote all, then end of stream" : "read \(next!.count) bytes")
                    } catch {
                        outcome.yield("\(error)")
                    }
                }
            }
            // The client does not read until the shutdown has begun: the server cannot get
            // 16 MiB through 64 KiB socket buffers on each side before that.
            let client = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 64 * 1024))
            try await client.write("GET")
            var connections = accepted.makeAsyncIterator()
            let served = try #require(await connections.next())

            server.shutdown()
            #expect(await served.isDraining)
            #expect(await served.bytesSent < UInt64(response.count), "the response was still being written when the shutdown began")
            expectSameBytes(try await client.readToEnd(), response, "the response")
            var results = outcomes.makeAsyncIterator()
            #expect(await results.next() == "wrote all, then end of stream")
            try await running.value
            await client.close()
        }

        /// A handler that goes on after its end of stream (here it waits for something that
        /// never comes) is still cancelled when the grace period ends, and the server then
        /// closes its connection.
        @Test func aHandlerThatIgnoresEndOfStreamIsCancelledWhenTheGracePeriodEnds() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(shutdownGracePeriod: .milliseconds(200)))
            let (started, handlerStarted) = AsyncStream.makeStream(of: Void.self)
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    handlerStarted.yield()
                    do {
                        while try await connection.read() != nil {}
                        outcome.yield("end of stream")
                        // Ignores it: work that takes far longer than the grace period.
                        try await connection.eventLoop.sleep(for: .seconds(3600))
                        outcome.yield("slept")
                    } catch {
                        outcome.yield(error is CancellationError ? "cancelled" : "\(error)")
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress)
            var starts = started.makeAsyncIterator()
            await starts.next()

            server.shutdown()
            var results = outcomes.makeAsyncIterator()
            #expect(await results.next() == "end of stream")
            #expect(await results.next() == "cancelled")
            try await running.value
            #expect(try await client.read() == nil, "the server closed the connection")
            await client.close()
        }

        /// A connection whose handler registers after the drain went through its loop (it was
        /// accepted just before the shutdown) starts out draining; one registered before is
        /// drained by it; draining is not closing.
        @Test func connectionsRegisteredBeforeOrAfterTheDrainBothDrain() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let loop = listener.eventLoop
            let registry = LoopConnections(loop: loop)
            let early = try await Connection.connect(to: listener.localAddress, on: loop)
            let late = try await Connection.connect(to: listener.localAddress, on: loop)
            let (earlyDrained, stillOpen) = await early.withIsolation { early in
                registry.register(early)
                let before = early.isDraining
                registry.drain()
                return (!before && early.isDraining, early.isOpen)
            }
            let lateDrained = await late.withIsolation { late in
                registry.register(late)
                return late.isDraining
            }
            #expect(earlyDrained)
            #expect(lateDrained)
            #expect(stillOpen)
            for connection in [early, late] { await connection.close() }
            await listener.close()  // also closes the two it accepted and queued
        }
    }
}
