import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// What a user sees when io_uring is forbidden: the echo-server example run under a seccomp
    /// filter (the DenyIOUring helper, Tests/DenyIOUring) that makes the io_uring system calls
    /// fail, as Docker's default profile does (EPERM) or a kernel without io_uring would
    /// (ENOSYS).
    ///
    /// - With the engine left to Torus (no `TORUS_ENGINE`), the example falls back to epoll: it
    ///   logs one notice naming the cause and saying so, and serves a real client.
    /// - With io_uring asked for (`TORUS_ENGINE=io_uring`), it exits with a failure status and
    ///   prints one line that names the cause and the fix: no crash, no stack trace.
    ///
    /// The same filter letting io_uring through is the control: the example then serves on
    /// io_uring, with no notice.
    ///
    /// Each child's `TORUS_ENGINE` is set or removed here, never inherited: the suite itself
    /// runs under `TORUS_ENGINE=epoll` too.
    @Suite(.noDescriptorLeaks)
    struct IOUringUnavailableTests {
        private static let listeningPrefix = "echo-server listening on 127.0.0.1:"

        /// Starts echo-server under DenyIOUring in `mode`, with `TORUS_ENGINE` set to `engine`
        /// (removed when nil).
        private static func startEchoServer(deny mode: String, engine: String?) throws -> ChildProcess {
            try ChildProcess(try builtProgram("DenyIOUring"),
                             [mode, try builtProgram("echo-server"), "--port", "0"],
                             environment: ["TORUS_ENGINE": engine])
        }

        /// Runs echo-server under DenyIOUring in `mode`, with io_uring asked for, until it exits.
        private static func runEchoServerForcingIOUring(deny mode: String) async throws -> (ChildProcess.Termination?, ChildProcess) {
            let child = try startEchoServer(deny: mode, engine: "io_uring")
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(60)) }
            return (termination, child)
        }

        /// Waits (without sleeping: reading its output) for the child's listening line and
        /// returns the port it names.
        private static func listeningPort(of child: ChildProcess) async throws -> UInt16 {
            let prefix = listeningPrefix
            let listening = await onPOSIXThread {
                child.read(until: { $0.contains(prefix) && $0.hasSuffix("\n") }, timeout: .seconds(60))
            }
            try #require(listening, "no listening line; stdout: \(child.outputText)\nstderr: \(child.errorText)")
            let line = try #require(child.outputText.split(separator: "\n").first { $0.hasPrefix(prefix) })
            return try #require(UInt16(line.dropFirst(prefix.count).prefix { $0.isNumber }), "\(line)")
        }

        /// A real client: connects to `port`, writes a line, half-closes and reads the echo to
        /// the end.
        private static func echo(_ text: String, port: UInt16) async throws -> String {
            let connection = try await Connection.connect(to: .ipv4(.loopback, port: port))
            try await connection.write(text)
            try await connection.shutdown(.write)
            let echoed = try await connection.readToEnd()
            await connection.close()
            return String(decoding: echoed, as: UTF8.self)
        }

        /// Stops the child with SIGTERM and reads the rest of its output. echo-server shuts
        /// down gracefully on SIGTERM, so a clean stop is exit 0, never death by the signal, a
        /// crash or a timeout.
        private static func stop(_ child: ChildProcess) async {
            kill(child.pid, SIGTERM)
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(60)) }
            #expect(termination == .exited(0),
                    "\(termination.map(\.description) ?? "did not stop"); stderr: \(child.errorText)")
        }

        /// The lines a child printed on either stream, empty ones left out.
        private static func lines(of child: ChildProcess) -> [Substring] {
            (child.outputText + "\n" + child.errorText).split(separator: "\n")
        }

        /// Under the filter, with the engine left to Torus: serves on epoll, after one notice
        /// (on standard error, at notice level) that names the cause. Returns the notice.
        private static func servesOnEpollAfterOneNotice(deny mode: String) async throws -> Substring {
            let child = try startEchoServer(deny: mode, engine: nil)
            let port = try await listeningPort(of: child)
            let echoed = try await echo("served under the filter (\(mode))\n", port: port)
            #expect(echoed == "served under the filter (\(mode))\n")
            await stop(child)

            let stdout = child.outputText.split(separator: "\n")
            #expect(stdout.count == 1 && stdout[0].hasPrefix(listeningPrefix), "stdout: \(child.outputText)")
            let stderr = child.errorText.split(separator: "\n")
            let notices = stderr.filter { $0.contains("io_uring is unavailable") }
            try #require(notices.count == 1, "expected one notice, got \(notices.count); stderr: \(child.errorText)")
            let notice = notices[0]
            #expect(notice.contains("notice"), "not at notice level: \(notice)")
            #expect(notice.contains("torus"), "not from the torus logger: \(notice)")
            #expect(notice.contains("using epoll"), "\(notice)")
            #expect(!child.errorText.contains("Fatal error"), "\(child.errorText)")
            return notice
        }

        @Test func forbiddenBySeccompTheExampleServesOnEpollAfterOneNoticeNamingTheCause() async throws {
            let notice = try await Self.servesOnEpollAfterOneNotice(deny: "eperm")
            #expect(notice.contains("Operation not permitted (errno 1)"), "\(notice)")
            let sysctl = Self.ioUringDisabledSysctl()
            if sysctl == nil || sysctl == "0" {
                #expect(notice.contains("a seccomp filter on this process forbids io_uring_setup"), "\(notice)")
            } else {
                #expect(notice.contains("kernel.io_uring_disabled sysctl (value \(sysctl!))"), "\(notice)")
            }
        }

        @Test func withoutKernelSupportTheExampleServesOnEpollAfterOneNoticeNamingTheCause() async throws {
            let notice = try await Self.servesOnEpollAfterOneNotice(deny: "enosys")
            #expect(notice.contains("Function not implemented (errno 38)"), "\(notice)")
            // ENOSYS can come from a seccomp filter too, and one is in force here.
            #expect(notice.contains("the seccomp filter on this process answers ENOSYS"), "\(notice)")
        }

        @Test func forbiddenBySeccompWithIOUringForcedTheExampleExitsWithOneMessageNamingTheCauseAndTheFix() async throws {
            let (termination, child) = try await Self.runEchoServerForcingIOUring(deny: "eperm")
            #expect(termination == .exited(1), "stdout: \(child.outputText)\nstderr: \(child.errorText)")
            let lines = Self.lines(of: child)
            try #require(lines.count == 1, "expected one line, got \(lines.count): \(lines)")
            let message = lines[0]
            #expect(message.hasPrefix("echo-server: "), "\(message)")
            #expect(message.contains("io_uring unavailable"), "\(message)")
            #expect(message.contains("Operation not permitted (errno 1)"), "\(message)")
            // The cause, and the fix.
            let sysctl = Self.ioUringDisabledSysctl()
            if sysctl == nil || sysctl == "0" {
                #expect(message.contains("a seccomp filter on this process forbids io_uring_setup"), "\(message)")
                #expect(!message.contains("kernel.io_uring_disabled"), "\(message)")
            } else {
                // This machine runs the rest of the suite, so the sysctl at most restricts
                // io_uring to a group this process passes: both causes are named.
                #expect(message.contains("kernel.io_uring_disabled sysctl (value \(sysctl!))"), "\(message)")
                #expect(message.contains("a seccomp filter is also in force on this process"), "\(message)")
            }
            #expect(message.contains("seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register"), "\(message)")
            #expect(message.contains("--security-opt seccomp=unconfined"), "\(message)")
        }

        @Test func withoutKernelSupportWithIOUringForcedTheExampleExitsWithOneMessageNamingWhatIsMissing() async throws {
            let (termination, child) = try await Self.runEchoServerForcingIOUring(deny: "enosys")
            #expect(termination == .exited(1), "stdout: \(child.outputText)\nstderr: \(child.errorText)")
            let lines = Self.lines(of: child)
            try #require(lines.count == 1, "expected one line, got \(lines.count): \(lines)")
            let message = lines[0]
            #expect(message.hasPrefix("echo-server: "), "\(message)")
            #expect(message.contains("io_uring unavailable"), "\(message)")
            #expect(message.contains("Function not implemented (errno 38)"), "\(message)")
            // What is missing, and what Torus needs.
            #expect(message.contains("built without CONFIG_IO_URING"), "\(message)")
            #expect(message.contains("Torus needs Linux 6.1 or later built with io_uring"), "\(message)")
            // ENOSYS can come from a seccomp filter too, and one is in force here.
            #expect(message.contains("the seccomp filter on this process answers ENOSYS"), "\(message)")
            #expect(!message.contains("not permitted"), "\(message)")
        }

        /// The control: the same filter, with the io_uring calls allowed, changes nothing, so
        /// the fallbacks and failures above come from the answer to io_uring_setup and from
        /// nothing else: with the engine left to Torus, the example serves on io_uring, with no
        /// fallback notice.
        @Test func theSameFilterLettingIoUringThroughLeavesTheExampleServingOnIOUring() async throws {
            let child = try Self.startEchoServer(deny: "allow", engine: nil)
            let port = try await Self.listeningPort(of: child)
            let echoed = try await Self.echo("through the filter\n", port: port)
            #expect(echoed == "through the filter\n")
            await Self.stop(child)
            // No fallback notice (a line saying which engine a server runs may be there).
            #expect(!child.errorText.contains("io_uring is unavailable"), "\(child.errorText)")
            #expect(!child.errorText.contains("using epoll"), "\(child.errorText)")
            #expect(!child.errorText.contains("Fatal error"), "\(child.errorText)")
        }

        /// The tests above rely on it: a child's `TORUS_ENGINE` is the one the test gives, or
        /// none, whatever the test run's own.
        @Test func theChildsEngineIsTheOneTheTestGivesNeverTheTestRunsOwn() async throws {
            for engine in [nil, "io_uring", "epoll"] as [String?] {
                let child = try ChildProcess("/bin/sh", ["-c", "printf '%s' \"${TORUS_ENGINE-unset}\""],
                                             environment: ["TORUS_ENGINE": engine])
                let termination = await onPOSIXThread { child.finish(timeout: .seconds(30)) }
                #expect(termination == .exited(0))
                #expect(child.outputText == engine ?? "unset")
            }
        }

        /// `kernel.io_uring_disabled`, nil where the kernel has no such sysctl.
        private static func ioUringDisabledSysctl() -> String? {
            let fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self).filter { !$0.isWhitespace }
        }
    }
}
