import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

/// An actor on a given loop, to call engine operations the way the socket actors do.
actor OnLoop {
    let loop: EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    init(_ loop: EventLoop) { self.loop = loop }
    /// One single-shot receive of at most 64 bytes on `fd` (the engine's `.receive`
    /// operation): its result and the bytes it received.
    func receive(_ fd: CInt, timeout: Duration?) async -> (Int32, [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        let result = await loop.receive(fd, into: buffer, timeout: timeout).result
        return (result, Array(buffer.prefix(max(0, Int(result)))))
    }

    func nops(_ count: Int) async -> [Int32] {
        var results: [Int32] = []
        for _ in 0..<count {
            results.append(await loop.nop().result)
            precondition(loop.isInEventLoop)
        }
        return results
    }
}

/// A read pending, in another task, on a connection that lives on a group of its own when
/// the group shuts down. Returns what the read threw (or a `TestFailure` if it returned).
/// The reader task is isolated to the connection and, with `readerPrefersLoop`, also prefers
/// the connection's loop as its task executor.
func readPendingWhenItsGroupShutsDown(readerPrefersLoop: Bool) async throws -> any Error {
    let group = try EventLoopGroup(loopCount: 2)
    let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))   // shared group
    async let accepted = listener.accept()
    let client = try await Connection.connect(to: listener.localAddress, on: group.loops[0])
    let server = try #require(try await accepted)
    await listener.close()

    let reader = await startPendingRead(on: client, preferringLoop: readerPrefersLoop)
    await group.shutdown()
    let result = await reader.result

    // `client` cannot be closed now (its loop is gone); dropping it closes its descriptor,
    // and the peer sees the connection end.
    _ = consume client
    #expect(try await server.read(timeout: .seconds(5)) == nil)
    await server.close()

    switch result {
    case .success(let bytes): return TestFailure("read returned \(String(describing: bytes)) after shutdown")
    case .failure(let error): return error
    }
}

extension Connection {
    /// Starts a reader task preferring this connection's loop and, queued behind it, another
    /// that asks the loop to stop after `hops` calls on this actor. Returns the reader.
    func startReadingThenStoppingLoop(afterHops hops: Int) -> Task<[UInt8]?, any Error> {
        let reader = Task(executorPreference: eventLoop) { try await self.read() }
        let loop = eventLoop
        Task(executorPreference: eventLoop) {
            for _ in 0..<hops { _ = await self.isOpen }
            loop.requestStop()
        }
        return reader
    }

}

extension TorusTests {
    /// Event loops and groups: start-up, shutdown, timers, executors.
    @Suite(.noDescriptorLeaks)
    struct EventLoopTests {
        @Test func nopRoundTripsStayOnTheLoop() async throws {
            let group = try EventLoopGroup(loopCount: 1)
            let results = await OnLoop(group.loops[0]).nops(100)
            #expect(results == Array(repeating: 0, count: 100))
            await group.shutdown()
        }

        /// The single-shot receive operation on both engines: it waits for bytes that arrive
        /// later, returns them, and a timeout ends a receive that gets nothing.
        @Test(arguments: [EventLoopGroup.EngineChoice.ioUring, .epoll])
        func singleShotReceiveWaitsForBytesAndTimesOut(engine: EventLoopGroup.EngineChoice) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
            let onLoop = OnLoop(group.loops[0])
            var pair: [CInt] = [-1, -1]
            // Non-blocking, as the loop's own sockets are on epoll.
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
            let fd = pair[0]
            let waiting = Task { await onLoop.receive(fd, timeout: .seconds(10)) }
            try await letTaskReachItsWait()
            #expect(write(pair[1], "ping", 4) == 4)
            let (count, bytes) = await waiting.value
            #expect(count == 4)
            #expect(bytes == Array("ping".utf8))
            let (timedOut, _) = await onLoop.receive(fd, timeout: .milliseconds(50))
            #expect(timedOut == -ECANCELED, "the linked timeout cancels a receive that gets nothing")
            close(pair[0])
            close(pair[1])
            await group.shutdown()
        }

        @Test func groupOfTwoLoopsStartsRunsWorkAndShutsDown() async throws {
            let group = try EventLoopGroup(loopCount: 2)
            #expect(group.loops.count == 2)
            #expect(group.loops.map(\.index) == [0, 1])
            #expect(group.loops[0] != group.loops[1])
            // next() takes turns.
            let picks = (0..<4).map { _ in group.next().index }
            #expect(Set(picks) == [0, 1])
            #expect(picks[0] != picks[1] && picks[0] == picks[2])

            for loop in group.loops {
                #expect(!loop.isInEventLoop)
                let ranOnLoop = await withTaskExecutorPreference(loop) { loop.isInEventLoop }
                #expect(ranOnLoop)
                try await loop.sleep(for: .milliseconds(1))
                #expect(loop.engine == group.engine)
                if loop.engine == .ioUring {
                    #expect(loop.ioUringCapabilities?.supportedOpcodes.isEmpty == false)
                } else {
                    #expect(loop.ioUringCapabilities == nil)
                }
            }
            await group.shutdown()
            // Shutting down again does nothing.
            await group.shutdown()
            group.syncShutdown()
        }

        @Test func loopsWakeEachOtherThroughTheirRings() async throws {
            let group = try EventLoopGroup(loopCount: 2)
            let (first, second) = (group.loops[0], group.loops[1])
            // Each hop is a job enqueued by one loop's thread onto the other, idle, loop: a
            // lost wake-up would hang here.
            let hops = try await Task(executorPreference: first) { () async throws -> Int in
                var hops = 0
                for _ in 0..<1000 {
                    try await withTaskExecutorPreference(second) {
                        #expect(EventLoop.current === second)
                        try await second.sleep(for: .zero)
                    }
                    #expect(EventLoop.current === first)
                    hops += 1
                }
                return hops
            }.value
            #expect(hops == 1000)
            #expect(EventLoop.current == nil, "a test thread is no loop's")
            await group.shutdown()
        }

        @Test func syncShutdownStopsAGroup() throws {
            let group = try EventLoopGroup(loopCount: 2)
            group.syncShutdown()
        }

        @Test func connectionsOnAGroupOfTheirOwnServeAnEcho() async throws {
            let group = try EventLoopGroup(loopCount: 2)
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: group.loops[0])
            #expect(listener.eventLoop === group.loops[0])
            async let accepted = listener.accept()
            let client = try await Connection.connect(to: listener.localAddress, on: group.loops[1])
            #expect(client.eventLoop === group.loops[1])
            let server = try #require(try await accepted)
            #expect(server.eventLoop === group.loops[0])
            try await client.write("across loops")
            #expect(try await server.read() == Array("across loops".utf8))
            await client.close()
            await server.close()
            await listener.close()
            await group.shutdown()
        }

        @Test func pendingReadOfTaskPreferringTheLoopEndsWithEventLoopShutDown() async throws {
            let error = try await readPendingWhenItsGroupShutsDown(readerPrefersLoop: true)
            let torusError = try #require(error as? TorusError, "\(error)")
            #expect(torusError.kind == .eventLoopShutDown)
            #expect(torusError.operation == .read)
        }

        /// A read that is only starting when its loop begins to stop must also end with
        /// `.eventLoopShutDown`: nothing cancelled the task, so `CancellationError` would be
        /// wrong. The stop is requested from a task queued on the loop behind the reader, after
        /// `hops` calls on the connection's actor, which places it at each point of the read's
        /// start in turn (no timing involved: the loop runs jobs in order). Uses the internal
        /// `requestStop()`, what `EventLoopGroup.shutdown()` does first. Exposes bug 3 in
        /// /tmp/brief/BUGS.md.
        @Test(arguments: 0..<6)
        func readStartingWhileItsLoopStopsEndsWithEventLoopShutDownNotCancellationError(hops: Int) async throws {
            let group = try EventLoopGroup(loopCount: 1)
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))   // shared group
            async let accepted = listener.accept()
            let client = try await Connection.connect(to: listener.localAddress, on: group.loops[0])
            let server = try #require(try await accepted)
            await listener.close()

            let reader = await client.startReadingThenStoppingLoop(afterHops: hops)
            let result = await reader.result
            await group.shutdown()
            _ = consume client   // its loop is gone: dropping it closes the descriptor
            await server.close()

            guard case .failure(let error) = result else {
                Issue.record("read returned \(result) although its loop stopped")
                return
            }
            let torusError = try #require(error as? TorusError,
                                          "stop requested after \(hops) hops: \(type(of: error)) instead of TorusError .eventLoopShutDown")
            #expect(torusError.kind == .eventLoopShutDown)
        }

        /// The same with a reader task that does not prefer the loop as its executor: the
        /// common case (a task isolated to the connection, as here, or a plain task).
        /// Run in a child process (an exit test), because the failures this guards against are
        /// crashes that would take the whole test run down; repeated, because they are races.
        /// Caught bug 1 (a trap, fixed in 0dcbbda) and, intermittently, bug 4 (a use-after-free
        /// of the loop after shutdown; deterministic only under AddressSanitizer) in
        /// /tmp/brief/BUGS.md.
        @Test func pendingReadOfTaskWithoutLoopPreferenceEndsWithEventLoopShutDownWithoutCrashing() async {
            await #expect(processExitsWith: .success) {
                for _ in 0..<50 {
                    let error = try await readPendingWhenItsGroupShutsDown(readerPrefersLoop: false)
                    guard let error = error as? TorusError, error.kind == .eventLoopShutDown else {
                        print("expected TorusError.eventLoopShutDown, got \(error)")
                        exit(3)
                    }
                }
            }
        }

        /// A connection handler must read and write with no thread but the loop's, both in the
        /// documented fast path (`connection.withIsolation { c in … }` from a plain child task)
        /// and in a child task that prefers the loop (the control: it passes). The test blocks
        /// every thread of the global executor (its own included) while the handler's pending
        /// read completes and it writes the reply, so any hop through the global executor
        /// stalls the handler. The withIsolation case exposes bug 1 in /tmp/brief/BUGS.md.
        @Test(arguments: [false, true])
        func connectionHandlerReadsAndWritesWithoutAGlobalExecutorThread(preferringLoop: Bool) async throws {
            let (connection, peer) = try await connectToRawPeer()
            defer { peer.close() }
            let reading = POSIXSemaphore()
            let done = POSIXSemaphore()
            let started = POSIXSemaphore()
            let release = POSIXSemaphore()

            try await withThrowingTaskGroup(of: Void.self) { group in
                if preferringLoop {
                    group.addTask(executorPreference: connection.eventLoop) {
                        reading.post()
                        if let message = try? await connection.read() {
                            try? await connection.write(message)
                        }
                        done.post()
                    }
                } else {
                    group.addTask {
                        await connection.withIsolation { connection in
                            reading.post()   // from here to the kernel wait, all on the loop thread
                            if let message = try? await connection.read() {
                                try? await connection.write(message)
                            }
                            done.post()
                        }
                    }
                }
                try #require(reading.wait(milliseconds: 5000), "the handler did not start")

                // Occupy every other thread of the cooperative pool (one per core).
                let blockerCount = max(1, EventLoopGroup.coreCount - 1)
                for _ in 0..<blockerCount {
                    group.addTask { started.post(); _ = release.wait(milliseconds: 30_000) }
                }
                var occupied = 0
                while occupied < blockerCount, started.wait(milliseconds: 5000) { occupied += 1 }
                guard occupied == blockerCount else {
                    for _ in 0..<blockerCount { release.post() }
                    throw TestFailure("could not occupy the global executor's threads")
                }

                // From here until the wait ends, this thread stays busy: no suspension point.
                try peer.sendAll(Array("ping".utf8))
                let finishedWithoutGlobalThreads = done.wait(milliseconds: 2000)
                for _ in 0..<blockerCount { release.post() }
                if !finishedWithoutGlobalThreads { _ = done.wait(milliseconds: 5000) }
                try await group.waitForAll()

                #expect(finishedWithoutGlobalThreads,
                        "the handler (\(preferringLoop ? "preferring the loop" : "in withIsolation")) needed a global executor thread to finish its read and write")
            }
            #expect(try peer.receive() == Array("ping".utf8))
            await connection.close()
        }

        @Test func pendingSleepEndsWithEventLoopShutDownWhenGroupShutsDown() async throws {
            let group = try EventLoopGroup(loopCount: 1)
            let loop = group.loops[0]
            let sleeper = Task { try await loop.sleep(for: .seconds(60)) }
            try await letTaskReachItsWait()
            await group.shutdown()
            // Either the sleep was pending (shut down) or never started on the loop in time;
            // both are errors, and it must not sleep a minute.
            await expectTorusError(.eventLoopShutDown) { try await sleeper.value }
        }

        @Test func sleepLastsAtLeastItsDuration() async throws {
            let loop = try EventLoopGroup.shared.next()
            for duration: Duration in [.milliseconds(1), .milliseconds(50), .milliseconds(120)] {
                let start = ContinuousClock.now
                try await loop.sleep(for: duration)
                let elapsed = ContinuousClock.now - start
                #expect(elapsed >= duration, "slept \(elapsed) for \(duration)")
                #expect(elapsed < duration + .seconds(2), "slept \(elapsed) for \(duration)")
            }
            // Zero and negative durations return promptly.
            try await loop.sleep(for: .zero)
            try await loop.sleep(for: .milliseconds(-5))
        }

        @Test func sleepIsCancellable() async throws {
            let loop = try EventLoopGroup.shared.next()
            let sleeper = Task { try await loop.sleep(for: .seconds(60)) }
            try await letTaskReachItsWait()
            let start = ContinuousClock.now
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            #expect(ContinuousClock.now - start < .seconds(2))

            // Cancelled before it starts: also CancellationError, at once.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                try await loop.sleep(for: .seconds(60))
            }
            await #expect(throws: CancellationError.self) { try await early.value }
        }

        @Test func sleepingOnTheLoopItselfWorks() async throws {
            let loop = try EventLoopGroup.shared.next()
            try await withTaskExecutorPreference(loop) {
                #expect(loop.isInEventLoop)
                let start = ContinuousClock.now
                try await loop.sleep(for: .milliseconds(20))
                #expect(ContinuousClock.now - start >= .milliseconds(20))
            }
        }

        @Test func sharedGroupIsOneInstanceWithALoopPerCore() throws {
            let shared = try EventLoopGroup.shared
            #expect(shared === (try EventLoopGroup.shared))
            #expect(shared.loops.count == EventLoopGroup.coreCount)
        }
    }
}
