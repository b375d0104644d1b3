import Testing
#if canImport(Glibc)
import Glibc
#endif

// Running the package's own programs (examples, test helpers) as child processes, with
// posix_spawn and pipes: no Foundation.

/// A program of this package, built next to the test bundle: `swift test` (like
/// `swift build --build-tests`) builds every executable of the package into the same
/// directory as the tests, for whichever configuration, sanitizer or scratch path it uses.
func builtProgram(_ name: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { throw POSIXError("readlink /proc/self/exe") }
    let testBundle = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let directory = testBundle.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    let path = directory + "/" + name
    guard access(path, X_OK) == 0 else {
        throw TestFailure("\(name) is not built next to the test bundle (\(path)); `swift test` and `swift build --build-tests` build it")
    }
    return path
}

/// A child process whose standard output and standard error come back through pipes
/// (standard input is /dev/null).
///
/// The blocking calls (``read(until:timeout:)``, ``finish(timeout:)``) are meant for a plain
/// thread (``onPOSIXThread(_:)``), not for the cooperative pool.
final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: a test uses it from one place at a time, each call awaited before
    // the next (the blocking ones run on a POSIX thread the caller waits for).

    /// How a child ended.
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    let pid: pid_t
    /// Everything read from the child's standard output so far.
    private(set) var standardOutput: [UInt8] = []
    /// Everything read from the child's standard error so far.
    private(set) var standardError: [UInt8] = []
    /// The read ends of the pipes, -1 once at end of stream and closed.
    private var outputFD: CInt
    private var errorFD: CInt
    private var termination: Termination?

    /// Starts `path` with `arguments` (not counting the program name) and this process's
    /// environment, changed by `environment`: a variable given a value is set to it, one given
    /// nil is removed (so that, say, a `TORUS_ENGINE` of the test run does not reach the child).
    init(_ path: String, _ arguments: [String], environment: [String: String?] = [:]) throws {
        // Close-on-exec, so that no other child inherits them (pipe2 is not imported).
        var output: [CInt] = [-1, -1]
        var error: [CInt] = [-1, -1]
        guard pipe(&output) == 0 else { throw POSIXError("pipe") }
        guard pipe(&error) == 0 else {
            close(output[0]); close(output[1])
            throw POSIXError("pipe")
        }
        for fd in output + error { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(output[1]); close(error[1]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // dup2 clears close-on-exec on the target: only 0, 1 and 2 reach the program.
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, error[1], 2)

        // Default dispositions and an empty mask for the signals a test sends or a program
        // might meet, whatever this process did with them.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var variables: [String] = []
        var entry: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = environ
        while let variable = entry.pointee {
            let text = String(cString: variable)
            let name = String(text.prefix { $0 != "=" })
            if environment[name] == nil { variables.append(text) }
            entry += 1
        }
        for (name, value) in environment { if let value { variables.append("\(name)=\(value)") } }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer { for variable in envp { free(variable) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            close(output[0]); close(error[0])
            throw POSIXError("posix_spawn \(path)", errno: rc)
        }
        self.pid = pid
        self.outputFD = output[0]
        self.errorFD = error[0]
    }

    deinit {
        if termination == nil {
            kill(pid, SIGKILL)
            var status: CInt = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if outputFD >= 0 { close(outputFD) }
        if errorFD >= 0 { close(errorFD) }
    }

    /// Standard output as text.
    var outputText: String { String(decoding: standardOutput, as: UTF8.self) }
    /// Standard error as text.
    var errorText: String { String(decoding: standardError, as: UTF8.self) }

    /// Reads both streams until `done` holds for the standard output read so far, both streams
    /// have ended, or `timeout` has passed. Returns whether `done` holds. Blocks.
    func read(until done: (String) -> Bool, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !done(outputText) {
            guard outputFD >= 0 || errorFD >= 0, readSome(until: deadline) else { return false }
        }
        return true
    }

    /// Reads both streams to their end and reaps the child. If they have not ended after
    /// `timeout`, kills the child (SIGKILL) and returns nil. Blocks.
    func finish(timeout: Duration) -> Termination? {
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while outputFD >= 0 || errorFD >= 0 {
            if !readSome(until: deadline) {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
        }
        // Both ends closed: the child has exited (none of these programs hands its output
        // to another process), or it was just killed. Either way waitpid returns soon.
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
        termination = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        return timedOut ? nil : termination
    }

    /// Waits for either stream to have data or end, until `deadline`, and takes what is there.
    /// Returns false if the deadline passed first.
    private func readSome(until deadline: ContinuousClock.Instant) -> Bool {
        var fds = [pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: errorFD, events: Int16(POLLIN), revents: 0)]   // poll skips fd -1
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { return false }
        let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1
        let ready = poll(&fds, nfds_t(fds.count), CInt(clamping: milliseconds))
        if ready < 0 { return errno == EINTR }
        if ready == 0 { return false }
        if fds[0].revents != 0 { drain(&outputFD, into: &standardOutput) }
        if fds[1].revents != 0 { drain(&errorFD, into: &standardError) }
        return true
    }

    /// One read from `fd` into `bytes`; closes `fd` (setting it to -1) at end of stream.
    private func drain(_ fd: inout CInt, into bytes: inout [UInt8]) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            bytes.append(contentsOf: chunk[..<count])
        } else if count == 0 || errno != EINTR {
            close(fd)
            fd = -1
        }
    }
}
