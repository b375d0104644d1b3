import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// What a user sees when io_uring is forbidden: the echo-server example run under a seccomp
    /// filter (the DenyIOUring helper, Tests/DenyIOUring) that makes the io_uring system calls
    /// fail, as Docker's default profile does, must exit with a failure status and print one
    /// line that names the cause and the fix: no crash, no stack trace. The same filter letting
    /// io_uring through is the control: the example then serves.
    @Suite(.noDescriptorLeaks)
    struct IOUringUnavailableTests {
        /// Runs echo-server under DenyIOUring in `mode` until it exits.
        private static func runEchoServer(deny mode: String) async throws -> (ChildProcess.Termination?, ChildProcess) {
            let child = try ChildProcess(try builtProgram("DenyIOUring"),
                                         [mode, try builtProgram("echo-server"), "--port", "0"])
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(60)) }
            return (termination, child)
        }

        /// The lines a child printed on either stream, empty ones left out.
        private static func lines(of child: ChildProcess) -> [Substring] {
            (child.outputText + "\n" + child.errorText).split(separator: "\n")
        }

        @Test func forbiddenBySeccompTheExampleExitsWithOneMessageNamingTheCauseAndTheFix() async throws {
            let (termination, child) = try await Self.runEchoServer(deny: "eperm")
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

        @Test func withoutKernelSupportTheExampleExitsWithOneMessageNamingWhatIsMissing() async throws {
            let (termination, child) = try await Self.runEchoServer(deny: "enosys")
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
        /// the failures above come from the answer to io_uring_setup and from nothing else.
        @Test func theSameFilterLettingIoUringThroughLeavesTheExampleServing() async throws {
            let child = try ChildProcess(try builtProgram("DenyIOUring"),
                                         ["allow", try builtProgram("echo-server"), "--port", "0"])
            let prefix = "echo-server listening on 127.0.0.1:"
            let listening = await onPOSIXThread {
                child.read(until: { $0.contains(prefix) && $0.hasSuffix("\n") }, timeout: .seconds(60))
            }
            try #require(listening, "no listening line; stdout: \(child.outputText)\nstderr: \(child.errorText)")
            let line = try #require(child.outputText.split(separator: "\n").first { $0.hasPrefix(prefix) })
            let port = try #require(UInt16(line.dropFirst(prefix.count).prefix { $0.isNumber }), "\(line)")

            let connection = try await Connection.connect(to: .ipv4(.loopback, port: port))
            try await connection.write("through the filter\n")
            try await connection.shutdown(.write)
            let echoed = try await connection.readToEnd()
            await connection.close()
            #expect(String(decoding: echoed, as: UTF8.self) == "through the filter\n")

            kill(child.pid, SIGTERM)
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(60)) }
            #expect(termination == .signaled(SIGTERM))
            #expect(child.errorText.isEmpty, "\(child.errorText)")
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
