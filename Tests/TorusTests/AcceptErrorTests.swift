import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// A system out of file descriptors (`ENFILE`) or kernel memory (`ENOMEM`) on accept: the
    /// real echo-server example run under the FailAccept helper (Tests/FailAccept), a seccomp
    /// filter whose supervisor makes `accept4` fail with the errno, then lets it through again.
    ///
    /// Connections made meanwhile wait in the kernel's backlog and are served, every byte,
    /// once accepting works; the pauses are logged with the errno named, in a few lines (not
    /// two per 100 ms pause); the server exits 0 on SIGTERM, with accept failing or not.
    ///
    /// On the epoll engine only (`TORUS_ENGINE=epoll` in the child, whatever the run's own):
    /// seccomp filters system calls, and under io_uring accepts are ring operations
    /// (`IORING_OP_ACCEPT`) that never pass through the filter. The io_uring engine's handling
    /// of the same errors is the same `ListenerCore` code; `EMFILE` is tried on both engines
    /// by `LimitsTests` (the real echo-server under `ulimit -n 256`).
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(2)))
    struct AcceptErrorTests {
        /// The clients that connect while accept fails, and what each sends.
        static let clients = 16
        static let bytesPerClient = 16 * 1024   // fits in the socket buffers while nobody reads

        /// Accepts the helper fails at least: about 2.5 s of 100 ms pauses, where the server
        /// logged 50 lines before.
        static let failures = 25

        /// echo-server under FailAccept, on epoll, with both of its output streams in one pipe
        /// (the shell execs the helper, which execs the server: one process throughout, so
        /// `pid` is the server's).
        private static func startEchoServer(failing errno: String, _ options: [String]) throws -> (ChildProcess, OutputWatcher) {
            let child = try ChildProcess("/bin/sh", [
                "-c", "exec \"$0\" \"$@\" 2>&1",
                try builtProgram("FailAccept"), errno,
            ] + options + [try builtProgram("echo-server"), "--port", "0"], environment: ["TORUS_ENGINE": "epoll"])
            return (child, OutputWatcher(child))
        }

        /// The port in the server's listening line, once it is there.
        private static func listeningPort(_ output: OutputWatcher) async throws -> UInt16 {
            try #require(await output.wait(for: "event loop(s)"), "no listening line: \(output.text)")
            let prefix = "echo-server listening on 127.0.0.1:"
            let line = try #require(output.text.split(separator: "\n").first { $0.hasPrefix(prefix) }, "\(output.text)")
            #expect(line.hasSuffix("on epoll"), "\(line)")
            return try #require(UInt16(line.dropFirst(prefix.count).prefix { $0.isNumber }), "\(line)")
        }

        /// The number that follows `prefix` in the output.
        private static func number(after prefix: String, in text: String) -> Int? {
            guard let range = text.firstRange(of: prefix) else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }

        /// The listener's lines about accept pauses.
        private static func pauseLines(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter {
                $0.contains("accept paused") || $0.contains("accept still paused") || $0.contains("resuming accept")
            }
        }

        /// Stops the server with SIGTERM: a graceful stop is exit 0 (not death by the signal,
        /// a crash or a timeout), and the helper's supervisor leaves with it (the output ends).
        private static func stop(_ child: ChildProcess, _ output: OutputWatcher) async {
            kill(child.pid, SIGTERM)
            await output.finish()
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(30)) }
            #expect(termination == .exited(0), "\(termination.map(\.description) ?? "did not stop"): \(output.text.suffix(2000))")
            #expect(!output.text.contains("Fatal error"), "\(output.text.suffix(2000))")
        }

        /// The server's sockets, once it holds `expected` (it closes a connection after echoing
        /// its end of stream, a moment after the client saw it): another process's descriptor
        /// table is no event to await, so it is looked at until a deadline.
        private static func sockets(of pid: pid_t, reaching expected: Int) async throws -> Int {
            let deadline = ContinuousClock.now + .seconds(10)
            var count = ProcessDescriptors.socketCount(of: pid)
            while count != expected, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                count = ProcessDescriptors.socketCount(of: pid)
            }
            return count
        }

        @Test(arguments: ["enfile", "enomem"])
        func connectionsMadeWhileAcceptFailsWaitInTheBacklogAndAreServedOnceItWorksWithTheEpisodeLoggedInAFewLines(errno: String) async throws {
            let name = errno.uppercased()
            let (child, output) = try Self.startEchoServer(failing: errno, ["--failures", "\(Self.failures)", "--until-signal"])
            var stopped = false
            defer { if !stopped { kill(child.pid, SIGKILL) } }
            let port = try await Self.listeningPort(output)
            let supervisor = try #require(Self.number(after: "FailAccept: supervisor ", in: output.text), "\(output.text)")
            let idleSockets = ProcessDescriptors.socketCount(of: child.pid)

            // Accepting has failed (the first accept the server made) and paused.
            try #require(await output.wait(for: "accept paused"), "no pause logged: \(output.text)")
            let clients = try (0..<Self.clients).map { _ in try RawSocket.connected(toLoopbackPort: port) }
            defer { for client in clients { client.close() } }
            let streams = (0..<Self.clients).map { randomBytes(Self.bytesPerClient, seed: UInt64($0) &+ 0xACCE) }
            for (client, stream) in zip(clients, streams) { try client.sendAll(stream) }
            // They are in the backlog: the server holds none of them while accept fails.
            #expect(ProcessDescriptors.socketCount(of: child.pid) == idleSockets, "\(ProcessDescriptors.targets(of: child.pid))")
            #expect(!output.text.contains("accept goes through"), "accept worked before the clients were waiting: \(output.text)")

            // From now on accept works once it has failed `failures` times in all.
            kill(pid_t(supervisor), SIGUSR1)
            let echoes = await onPOSIXThread {
                clients.map { client -> Result<[UInt8], POSIXError> in
                    Result {
                        var echoed: [UInt8] = []
                        while echoed.count < Self.bytesPerClient {
                            let bytes = try client.receive(maxBytes: Self.bytesPerClient - echoed.count)
                            if bytes.isEmpty { break }
                            echoed += bytes
                        }
                        client.shutdownWrite()
                        // Then the server ends the stream too.
                        guard try client.receive().isEmpty else { throw POSIXError("bytes after the echo") }
                        return echoed
                    }.mapError { $0 as? POSIXError ?? POSIXError("\($0)") }
                }
            }
            for (index, (echo, stream)) in zip(echoes, streams).enumerated() {
                switch echo {
                case .success(let echoed): expectSameBytes(echoed, stream, "client \(index)'s echo")
                case .failure(let error): Issue.record("client \(index): \(error)")
                }
            }
            #expect(try await Self.sockets(of: child.pid, reaching: idleSockets) == idleSockets, "the served connections were closed")

            // Still serving: a fresh connection, accepted at once.
            let fresh = try RawSocket.connected(toLoopbackPort: port)
            defer { fresh.close() }
            let line = Array("served after the episode\n".utf8)
            try fresh.sendAll(line)
            let echoed = await onPOSIXThread { try? fresh.receive(maxBytes: line.count) }
            #expect(echoed == line)

            await Self.stop(child, output)
            stopped = true

            // Logged: the pause with the errno, and its end with the number of pauses (one per
            // failed accept), in a few lines for the whole episode.
            let failed = try #require(Self.number(after: "accept goes through again after ", in: output.text), "\(output.text)")
            #expect(failed >= Self.failures)
            let lines = Self.pauseLines(output.text)
            #expect(lines.count <= 3, "\(lines.count) lines about pauses: \(lines)")
            #expect(lines.first?.contains("accept paused for 100 ms: \(name): \(String(cString: strerror(name == "ENFILE" ? ENFILE : ENOMEM)))") == true,
                    "\(lines)")
            #expect(lines.last?.contains("resuming accept after \(failed) pauses over ") == true, "\(lines)")
            // Which listener: the port it was given (it asked for port 0).
            #expect(lines.allSatisfy { $0.contains("listener=127.0.0.1:\(port) ") }, "\(lines)")
            #expect(lines.last?.hasSuffix("(\(name))") == true, "\(lines)")
        }

        /// An error about one connection (`EPERM`, `ECONNABORTED`, …) is followed by the next
        /// accept at once. But one that repeats with no connection accepted in between is not
        /// about a connection: accept failing with `EPERM` 200 times in a row (a filter, not a
        /// firewall rule) made the listener spin, a failed `accept4` every loop turn. It now
        /// pauses, as for `ENFILE`, after 64 in a row, and says so.
        @Test func aPerConnectionErrorThatRepeatsWithNoConnectionBetweenPausesAcceptingInsteadOfSpinning() async throws {
            let (child, output) = try Self.startEchoServer(failing: "eperm", ["--failures", "200"])
            var stopped = false
            defer { if !stopped { kill(child.pid, SIGKILL) } }
            let port = try await Self.listeningPort(output)
            try #require(await output.wait(for: "accept goes through again"), "\(output.text)")

            let client = try RawSocket.connected(toLoopbackPort: port)
            defer { client.close() }
            let line = Array("served after 200 failures\n".utf8)
            try client.sendAll(line)
            let echoed = await onPOSIXThread { try? client.receive(maxBytes: line.count) }
            #expect(echoed == line)

            // Logged before the echo went out; the whole output is in once the server stopped.
            await Self.stop(child, output)
            stopped = true
            let lines = Self.pauseLines(output.text)
            #expect(lines.count == 2, "\(lines)")
            #expect(lines.first?.contains("accept paused for 100 ms after 64 failures in a row: EPERM: Operation not permitted (errno 1)") == true,
                    "\(lines)")
            // 200 failures: a pause after each 64, and 8 more.
            #expect(lines.last?.contains("resuming accept after 3 pauses over ") == true, "\(lines)")
            #expect(lines.last?.hasSuffix(" (EPERM)") == true, "\(lines)")
        }

        /// Accept failing for good: the server keeps running and pausing (quietly), leaves the
        /// waiting connections in the backlog, and stops cleanly on SIGTERM in the middle of a
        /// pause.
        @Test(arguments: ["enfile", "enomem"])
        func whileAcceptKeepsFailingTheServerStaysUpHoldsNoConnectionAndExitsZeroOnSIGTERM(errno: String) async throws {
            let (child, output) = try Self.startEchoServer(failing: errno, [])
            var stopped = false
            defer { if !stopped { kill(child.pid, SIGKILL) } }
            let port = try await Self.listeningPort(output)
            let idleSockets = ProcessDescriptors.socketCount(of: child.pid)
            try #require(await output.wait(for: "accept paused"), "no pause logged: \(output.text)")

            let clients = try (0..<4).map { _ in try RawSocket.connected(toLoopbackPort: port) }
            defer { for client in clients { client.close() } }
            for client in clients { try client.sendAll(Array("never echoed\n".utf8)) }
            #expect(ProcessDescriptors.socketCount(of: child.pid) == idleSockets, "\(ProcessDescriptors.targets(of: child.pid))")

            await Self.stop(child, output)
            stopped = true
            let lines = Self.pauseLines(output.text)
            #expect(lines.count == 1, "\(lines)")
            #expect(lines.first?.contains(": \(errno.uppercased()): ") == true, "\(lines)")
            // The listener closed with the server: its backlog went with it.
            for client in clients {
                #expect(client.poll(POLLIN, milliseconds: 10_000) != 0, "the waiting connection was ended")
            }
        }
    }
}
