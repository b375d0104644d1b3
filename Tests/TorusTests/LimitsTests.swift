@testable import Torus
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Running out: descriptors (the real echo-server under a low `ulimit -n`), receive buffers,
    /// completion-queue room, and a storm of cancelled operations.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(2)))
    struct LimitsTests {
        /// The message connection `index` sends in `round`, different for every connection and
        /// round, so that an echo mixed up between connections cannot pass.
        static func message(_ index: Int, round: Int) -> [UInt8] {
            Array("connection \(index), round \(round)\n".utf8)
        }

        static func expectEcho(on connection: Connection, index: Int, round: Int) async throws {
            let message = Self.message(index, round: round)
            try await connection.write(message)
            let echoed = try await connection.read(exactly: message.count)
            #expect(echoed == message, "connection \(index), round \(round): \(String(decoding: echoed, as: UTF8.self))")
        }

        // MARK: Descriptors

        /// The echo-server example with a soft limit of 256 descriptors, and 1,000 connections
        /// at once: it accepts what it can, logs the pause when accept fails with `EMFILE` (in a
        /// few lines, not two per pause), keeps serving the connections it holds while it cannot
        /// accept, and takes the waiting ones (from its backlog, and those whose SYN the full
        /// backlog dropped and the client sent again) as soon as connections end, until every
        /// one has been served; it never exits.
        @Test func echoServerOutOfDescriptorsKeepsServingPausesAcceptingAndCatchesUpWhenDescriptorsFree() async throws {
            let total = 1000
            let started = ContinuousClock.now
            let ownLimit = raiseDescriptorLimit(toAtLeast: 4096)
            try #require(ownLimit >= total + 512, "this test needs \(total + 512) descriptors of its own; the limit is \(ownLimit)")

            // The shell lowers the limit (soft and hard) and becomes the server; its log
            // lines (standard error) go to the same pipe as its standard output.
            let child = try ChildProcess("/bin/sh", [
                "-c", "ulimit -n 256 && exec \"$0\" \"$@\" 2>&1",
                try builtProgram("echo-server"), "--port", "0",
            ])
            var exited = false
            defer { if !exited { kill(child.pid, SIGKILL) } }
            let output = OutputWatcher(child)

            try #require(await output.wait(for: "event loop(s)"), "no listening line: \(output.text)")
            let prefix = "echo-server listening on 127.0.0.1:"
            let line = try #require(output.text.split(separator: "\n").first { $0.hasPrefix(prefix) }, "\(output.text)")
            let port = try #require(UInt16(line.dropFirst(prefix.count).prefix { $0.isNumber }), "\(line)")
            try #require(ProcessDescriptors.softLimit(of: child.pid) == 256, "the server runs with 256 descriptors at most")
            // Its sockets before any connection: the listener, and any this test process
            // inherited without close-on-exec and passed on.
            let idleSockets = ProcessDescriptors.socketCount(of: child.pid)
            let address = SocketAddress.ipv4(.loopback, port: port)

            let paused = Gate()
            let release = Gate()
            let firstEchoes = Tally()
            let secondEchoes = Tally()
            let done = Tally()
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer {
                    paused.open()
                    release.open()
                }
                for index in 0..<total {
                    group.addTask {
                        // A connect whose SYN the full backlog dropped completes when the
                        // kernel sends it again (after 1 s, 3 s, …) and finds room.
                        let connection = try await Connection.connect(to: address)
                        do {
                            try await Self.expectEcho(on: connection, index: index, round: 1)
                            firstEchoes.increment()
                            await paused.wait()
                            try await Self.expectEcho(on: connection, index: index, round: 2)
                            secondEchoes.increment()
                            await release.wait()
                            try await connection.shutdown(.write)
                            #expect(try await connection.read() == nil, "the server ends the stream after ours")
                        } catch {
                            await connection.close()
                            throw error
                        }
                        await connection.close()
                        done.increment()
                    }
                }

                // 1,000 connections need more than 256 descriptors: accept fails and pauses.
                try #require(await output.wait(for: "accept paused"), "no accept pause was logged: \(output.text)")
                // The server's table is full, and stays so while no connection ends (none ends
                // before `release`): every connection it holds is a socket in it.
                let held = ProcessDescriptors.socketCount(of: child.pid) - idleSockets
                #expect(ProcessDescriptors.targets(of: child.pid).count <= 256)
                try #require(held > 0 && held < total, "the server holds \(held) connections")

                // Those it holds are still served, in both directions, while it cannot accept.
                paused.open()
                await secondEchoes.wait(untilAtLeast: held)
                #expect(firstEchoes.value == held, "only the connections it accepted were served")
                #expect(done.value == 0)

                // Ending them frees descriptors: the waiting connections are accepted in turn.
                release.open()
                try await group.waitForAll()
            }
            #expect(done.value == total, "every connection was served and ended")
            #expect(firstEchoes.value == total)
            #expect(secondEchoes.value == total)
            let log = output.text
            #expect(log.contains("Too many open files"), "\(log.prefix(2000))")
            #expect(log.contains("resuming accept"), "\(log.prefix(2000))")
            // Accepting may flap (a connection ends, its descriptor goes to the next one, the
            // table is full again) for as long as the test runs: the first pause, the first
            // resumption, then a summary at most every 10 s; no longer two lines per pause.
            let pauseLines = log.split(separator: "\n").filter {
                $0.contains("accept paused") || $0.contains("accept still paused") || $0.contains("resuming accept")
            }
            let seconds = (ContinuousClock.now - started).components.seconds
            #expect(pauseLines.count <= 2 + Int(seconds / 10) + 1, "\(pauseLines.count) lines in \(seconds) s: \(pauseLines.prefix(20))")

            // Still serving, and still running: it ends by the signal sent now, not before.
            let fresh = try await Connection.connect(to: address)
            try await Self.expectEcho(on: fresh, index: total, round: 1)
            await fresh.close()
            kill(child.pid, SIGTERM)
            await output.finish()
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(30)) }
            exited = true
            #expect(termination == .exited(0), "\(output.text.suffix(2000))")
            #expect(!output.text.contains("Fatal error"), "\(output.text.suffix(2000))")
        }

        // MARK: Receive buffers

        /// The index a connection's stream starts with, so that the server can tell whose bytes
        /// it got.
        static func header(_ index: Int) -> [UInt8] {
            withUnsafeBytes(of: UInt32(index).littleEndian) { Array($0) }
        }

        /// The whole stream connection `index` sends: its header, then seeded random bytes.
        static func stream(_ index: Int, count: Int) -> [UInt8] {
            header(index) + randomBytes(count, seed: UInt64(index) &+ 0x5EED)
        }

        /// How many receivers of `loop` wait for a receive buffer to come back (they ran out:
        /// `ENOBUFS`). Read on the loop, whose state it is.
        static func receiveBufferWaiters(on loop: EventLoop) async throws -> Int {
            try await loop.run {
                #expect(loop.isInEventLoop)
                return loop.receiveBufferWaiters.count
            }
        }

        /// 64 connections on a loop with 16 receive buffers, each sending 64 KiB to a reader
        /// that took its first bytes and then stopped reading, holding them: the loop runs out
        /// of buffers (receives end with `ENOBUFS` and wait for buffers to come back). Once the
        /// readers read again, every connection gets all its bytes, in order, and a new
        /// connection on the same loop works: it recovers without a restart.
        @Test func slowReadersExhaustingTheReceiveBuffersGetEveryByteAndTheLoopRecovers() async throws {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferCount = 16
            configuration.receiveBufferSize = 4096
            let group = try EventLoopGroup(loopCount: 1, configuration: configuration)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let server = Server(listener: listener)
            let connections = 64
            let payloadSize = 64 * 1024

            let release = Gate()
            let holding = Tally()
            let finished = Tally()
            let received = AnnotatedMutex<[Int: [UInt8]]>([:])
            let running = Task {
                try await server.run { connection in
                    // A slow reader: it takes the first bytes, then stops reading (keeping them,
                    // and so their buffer) until released.
                    guard let first = try await connection.receive() else { return }
                    holding.increment()
                    await release.wait()
                    var bytes = first.array
                    _ = consume first
                    while let more = try await connection.receive() {
                        more.withUnsafeBytes { bytes.append(contentsOf: $0) }
                    }
                    let index = bytes.prefix(4).withUnsafeBytes { raw in
                        raw.count == 4 ? Int(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))) : -1
                    }
                    received.withLock { $0[index] = bytes }
                    finished.increment()
                }
            }
            defer { release.open() }

            var clients: [Connection] = []
            var writers: [Task<Void, any Error>] = []
            for index in 0..<connections {
                let client = try await Connection.connect(to: listener.localAddress)
                clients.append(client)
                let stream = Self.stream(index, count: payloadSize)
                writers.append(Task {
                    try await client.write(stream)
                    try await client.shutdown(.write)
                })
            }

            // The kernel's ENOBUFS is not an event a test can await: look at the loop until
            // every connection either holds buffers (its reader got its first bytes) or waits
            // for one.
            let deadline = ContinuousClock.now + .seconds(30)
            var waitingForBuffers = 0
            while ContinuousClock.now < deadline {
                waitingForBuffers = try await Self.receiveBufferWaiters(on: loop)
                if waitingForBuffers > 0, waitingForBuffers + holding.value >= connections { break }
                try await loop.sleep(for: .milliseconds(2))
            }
            #expect(waitingForBuffers > 0, "the loop ran out of receive buffers")
            #expect(holding.value <= configuration.receiveBufferCount, "no more readers got bytes than there are buffers")

            release.open()
            await finished.wait(untilAtLeast: connections)
            for writer in writers { try await writer.value }
            for client in clients {
                #expect(try await client.read() == nil, "the server closed after reading everything")
                await client.close()
            }
            received.withLock { received in
                for index in 0..<connections {
                    expectSameBytes(received[index] ?? [], Self.stream(index, count: payloadSize), "connection \(index)'s bytes")
                }
            }
            #expect(try await Self.receiveBufferWaiters(on: loop) == 0, "no receiver is left waiting for buffers")

            // The same loop, not restarted, serves a new connection.
            let late = try await Connection.connect(to: listener.localAddress)
            let lateStream = Self.stream(connections, count: 256 * 1024)
            try await late.write(lateStream)
            try await late.shutdown(.write)
            #expect(try await late.read() == nil)
            await late.close()
            await finished.wait(untilAtLeast: connections + 1)
            expectSameBytes(received.withLock { $0[connections] } ?? [], lateStream, "the new connection's bytes")

            server.shutdown()
            try await running.value
            await group.shutdown()
        }

        // MARK: Completion queue

        /// A ring of 8 submission entries (so 32 completion entries), and of 2 (8 completion
        /// entries; the smallest that works: a request with a linked timeout takes two
        /// submission entries, and with 1 the loop traps), serving 300 echo connections at once,
        /// with as many clients on the same tiny ring: completions far outnumber the queue's
        /// room (20,000 to 30,000 overflows per case, counted with the kernel's
        /// `io_uring:io_uring_cqe_overflow` tracepoint), and the kernel holds the overflow until
        /// the loop reaps. None may be
        /// lost: every connection gets every byte back, in order, and ends.
        @Test(arguments: [UInt32(8), 2])
        func aTinyCompletionQueueLosesNoCompletionUnderHundredsOfEchoConnections(submissionQueueEntries: UInt32) async throws {
            var configuration = EventLoop.Configuration()
            configuration.ioUring.submissionQueueEntries = submissionQueueEntries
            let group = try EventLoopGroup(loopCount: 1, configuration: configuration)
            let loop = group.loops[0]
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
            let server = Server(listener: listener)
            let running = Task {
                try await server.run { connection in
                    while let bytes = try await connection.receive() {
                        try await connection.send(bytes)
                    }
                }
            }
            let connections = 300
            let payloadSize = 32 * 1024
            try await withThrowingTaskGroup(of: Void.self) { clients in
                for index in 0..<connections {
                    clients.addTask {
                        let client = try await Connection.connect(to: listener.localAddress, on: loop)
                        let stream = Self.stream(index, count: payloadSize)
                        async let echoed = client.readToEnd()
                        // In pieces, so that each connection makes many completions.
                        var offset = 0
                        while offset < stream.count {
                            let end = min(stream.count, offset + 1000)
                            try await client.write(stream[offset..<end])
                            offset = end
                        }
                        try await client.shutdown(.write)
                        expectSameBytes(try await echoed, stream, "connection \(index)'s echo")
                        await client.close()
                    }
                }
                try await clients.waitForAll()
            }
            server.shutdown()
            try await running.value
            await group.shutdown()
        }

        // MARK: Cancellation

        /// How a task of the cancellation storm ended.
        enum Outcome: Sendable {
            case cancelled
            /// The operation finished before the cancellation took effect; for a read, with
            /// this many bytes.
            case completed(Int)
            /// A write refused because an earlier write on its connection was cancelled
            /// part-way: the stream has a gap, so nothing more may go out on it.
            case refusedAfterBrokenWrite
            case failed(String)
        }

        /// Runs `operation`, telling a cancellation apart from every other error.
        static func outcome(_ operation: @Sendable () async throws -> Int) async -> Outcome {
            do {
                return .completed(try await operation())
            } catch is CancellationError {
                return .cancelled
            } catch let error as TorusError where error.kind == .incompleteWrite {
                return .refusedAfterBrokenWrite
            } catch {
                return .failed("\(error)")
            }
        }

        /// 10,000 tasks, 400 at a time, cancelled while they accept, connect (to a peer that
        /// answers and to one that never does), read (while the peer may be sending) and write
        /// (to a peer that never reads, so writes block and queue): some before they start, some
        /// one loop turn in, some a few milliseconds in. Each ends with `CancellationError` or,
        /// if it finished first, its result, never another error; nothing hangs; no descriptor
        /// is left open; and no byte a cancelled read raced with is lost.
        @Test(.noDescriptorLeaks, .timeLimit(.minutes(1)))
        func tenThousandTasksCancelledMidOperationLeakNothingHangNowhereAndLoseNoBytes() async throws {
            let batches = 25
            let perKind = 100   // accepts, connects, reads and writes per batch: 400 tasks
            let loops = try EventLoopGroup.shared.loops
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let unresponsive = try UnresponsiveListener()
            defer { unresponsive.close() }
            var readPairs: [(reader: Connection, peer: Connection)] = []
            for _ in 0..<perKind {
                let (client, server) = try await connectedPair()
                readPairs.append((reader: client, peer: server))
            }
            // Small buffers and peers that never read: after the first few KiB, every write
            // waits for room, and the writers behind it wait for their turn.
            var stuck: [(connection: Connection, peer: RawSocket)] = []
            for _ in 0..<(perKind / 4) {
                stuck.append(try await connectToRawPeer(options: .init(sendBufferSize: 4096), peerReceiveBufferSize: 4096))
            }
            let chunk = [UInt8](repeating: 7, count: 64 * 1024)

            var counts: [String: (cancelled: Int, completed: Int)] = [:]
            var sentToReaders = [Int](repeating: 0, count: perKind)
            var readByReaders = [Int](repeating: 0, count: perKind)
            var generator = SplitMix64(seed: 10_000)
            for _ in 0..<batches {
                var tasks: [(kind: String, pair: Int?, task: Task<Outcome, Never>)] = []
                for index in 0..<perKind {
                    tasks.append(("accept", nil, Task {
                        await Self.outcome {
                            guard let connection = try await listener.accept() else { throw TestFailure("listener closed") }
                            await connection.close()
                            return 0
                        }
                    }))
                    let target: SocketAddress = index.isMultiple(of: 2) ? listener.localAddress : .ipv4(.loopback, port: unresponsive.port)
                    tasks.append(("connect", nil, Task {
                        await Self.outcome {
                            let connection = try await Connection.connect(to: target)
                            await connection.close()
                            return 0
                        }
                    }))
                    let reader = readPairs[index].reader
                    tasks.append(("read", index, Task {
                        await Self.outcome {
                            guard let bytes = try await reader.read() else { throw TestFailure("end of stream") }
                            return bytes.count
                        }
                    }))
                    let writer = stuck[index % stuck.count].connection
                    tasks.append(("write", nil, Task {
                        await Self.outcome {
                            try await writer.write(chunk)
                            return chunk.count
                        }
                    }))
                }
                // Cancel a third at once (most have not started), a third after a turn of every
                // loop, the rest a few milliseconds later (most are waiting in the kernel).
                tasks.shuffle(using: &generator)
                let third = tasks.count / 3
                for entry in tasks[..<third] { entry.task.cancel() }
                for loop in loops { try await loop.sleep(for: .zero) }
                for entry in tasks[third..<(2 * third)] { entry.task.cancel() }
                // Half the readers' peers send a byte now: to a read cancelled already (the
                // byte waits for a later one), to one being cancelled, or to one still waiting.
                for index in 0..<perKind where generator.next() % 2 == 0 {
                    try await readPairs[index].peer.write([UInt8(truncatingIfNeeded: index)])
                    sentToReaders[index] += 1
                }
                try await loops[0].sleep(for: .milliseconds(5))
                for entry in tasks[(2 * third)...] { entry.task.cancel() }

                for entry in tasks {
                    switch await entry.task.value {
                    case .cancelled:
                        counts[entry.kind, default: (0, 0)].cancelled += 1
                    case .completed(let bytes):
                        counts[entry.kind, default: (0, 0)].completed += 1
                        if let pair = entry.pair { readByReaders[pair] += bytes }
                    case .refusedAfterBrokenWrite where entry.kind == "write":
                        // A consequence of a cancelled write: counted with them.
                        counts[entry.kind, default: (0, 0)].cancelled += 1
                    case .refusedAfterBrokenWrite:
                        Issue.record("a cancelled \(entry.kind) failed as a broken write")
                    case .failed(let error):
                        Issue.record("a cancelled \(entry.kind) failed with \(error)")
                    }
                }
            }
            let total = counts.values.reduce(0) { $0 + $1.cancelled + $1.completed }
            #expect(total == batches * perKind * 4, "\(counts)")
            // What could not finish was cancelled: accepts beyond the connections made, connects
            // to the peer that never answers, reads with nothing sent, writes with no room.
            let perRun = batches * perKind
            #expect(counts["accept", default: (0, 0)].cancelled >= perRun / 2, "\(counts)")
            #expect(counts["connect", default: (0, 0)].cancelled >= perRun / 2, "\(counts)")
            #expect(counts["read", default: (0, 0)].cancelled >= perRun - sentToReaders.reduce(0, +), "\(counts)")
            #expect(counts["write", default: (0, 0)].cancelled >= perRun - stuck.count, "\(counts)")

            // No byte was lost to a cancelled read: what the reads did not return is still there.
            for (index, pair) in readPairs.enumerated() {
                try await pair.peer.shutdown(.write)
                readByReaders[index] += try await pair.reader.readToEnd().count
                #expect(readByReaders[index] == sentToReaders[index], "reader \(index)")
                await pair.reader.close()
                await pair.peer.close()
            }
            for (connection, peer) in stuck {
                await connection.close()
                peer.close()
            }
            await listener.close()
        }
    }
}
