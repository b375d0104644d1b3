import CURing
#if canImport(Glibc)
import Glibc
#endif

/// What the running kernel's io_uring offers, as found when a loop created its ring.
public struct IOUringCapabilities: Sendable, CustomStringConvertible {
    /// `IORING_SETUP_*` flags the ring was created with.
    public let setupFlags: UInt32
    /// `IORING_FEAT_*` bits the kernel reported.
    public let features: UInt32
    /// Opcodes (`IORING_OP_*`) the kernel supports; empty if the kernel cannot be probed.
    public let supportedOpcodes: Set<UInt8>

    init(ring: UnsafeMutablePointer<io_uring>, setupFlags: UInt32, features: UInt32) {
        self.setupFlags = setupFlags
        self.features = features
        var opcodes = Set<UInt8>()
        if let probe = io_uring_get_probe_ring(ring) {
            for opcode in 0..<UInt8(IORING_OP_LAST.rawValue) where io_uring_opcode_supported(probe, Int32(opcode)) != 0 {
                opcodes.insert(opcode)
            }
            io_uring_free_probe(probe)
        }
        self.supportedOpcodes = opcodes
    }

    /// The ring defers completion work to the loop thread (`DEFER_TASKRUN`, Linux 6.1+).
    public var defersTaskRun: Bool { setupFlags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0 }
    /// The ring accepts submissions from a single thread only (`SINGLE_ISSUER`, Linux 6.0+).
    public var singleIssuer: Bool { setupFlags & UInt32(IORING_SETUP_SINGLE_ISSUER) != 0 }

    /// Whether the kernel supports `opcode`.
    func supports(_ opcode: io_uring_op) -> Bool {
        supportedOpcodes.contains(UInt8(opcode.rawValue))
    }

    /// The setup flags that matter and the number of supported opcodes, as in
    /// `io_uring(flags: SINGLE_ISSUER|DEFER_TASKRUN, opcodes: COUNT)`.
    public var description: String {
        var flags: [String] = []
        if setupFlags & UInt32(IORING_SETUP_SINGLE_ISSUER) != 0 { flags.append("SINGLE_ISSUER") }
        if setupFlags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0 { flags.append("DEFER_TASKRUN") }
        if setupFlags & UInt32(IORING_SETUP_COOP_TASKRUN) != 0 { flags.append("COOP_TASKRUN") }
        if setupFlags & UInt32(IORING_SETUP_SUBMIT_ALL) != 0 { flags.append("SUBMIT_ALL") }
        return "io_uring(flags: \(flags.joined(separator: "|")), opcodes: \(supportedOpcodes.count))"
    }

    /// The one error that explains why `io_uring_setup` failed with `errno`, and what to do.
    ///
    /// `EPERM` has several possible causes; the message names the one this process is under,
    /// as far as it can tell: the `kernel.io_uring_disabled` sysctl, a seccomp filter on this
    /// process (the `Seccomp:` line of `/proc/self/status`), or, when neither is in force,
    /// a security module's policy.
    static func setupError(errno: Int32) -> TorusError {
        let reason: String
        switch errno {
        case EPERM:
            reason = permissionReason(
                ioUringDisabled: readFile("/proc/sys/kernel/io_uring_disabled")?.filter { !$0.isWhitespace },
                seccompFiltered: isSeccompFiltered())
        case ENOSYS:
            let kernel = "this kernel (Linux \(kernelRelease()))"
            if isSeccompFiltered() == true {
                reason = "io_uring_setup is not implemented here: \(kernel) was built without CONFIG_IO_URING, "
                    + "or the seccomp filter on this process answers ENOSYS for it, as some container runtimes "
                    + "do for the calls they block; Torus needs Linux 6.1 or later built with io_uring, and a "
                    + "seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register"
            } else {
                reason = "\(kernel) has no io_uring system calls: it was built without CONFIG_IO_URING; "
                    + "Torus needs Linux 6.1 or later built with io_uring"
            }
        case ENOMEM:
            reason = "not enough locked memory for the ring; raise `ulimit -l` (RLIMIT_MEMLOCK) or use Linux 5.12+ which accounts rings to memory cgroups"
        case EMFILE, ENFILE:
            reason = "no file descriptor left for the ring; raise `ulimit -n`"
        case EINVAL:
            reason = "the kernel rejected every ring configuration Torus tried; Torus needs Linux 6.1 or later"
        default:
            reason = "io_uring_setup failed"
        }
        return TorusError(.ioUringUnavailable, operation: .ringSetup, errno: errno, detail: reason)
    }

    private static let seccompFix = "run with a seccomp profile that allows io_uring_setup, io_uring_enter "
        + "and io_uring_register (e.g. docker run --security-opt seccomp=unconfined)"

    /// Why `io_uring_setup` is not permitted, and the fix, given the `kernel.io_uring_disabled`
    /// value (nil where the kernel has no such sysctl) and whether a seccomp filter is in force
    /// (nil if unknown).
    private static func permissionReason(ioUringDisabled: String?, seccompFiltered: Bool?) -> String {
        let sysctl: String?
        switch ioUringDisabled {
        case nil, "0"?:
            sysctl = nil
        case "1"?:
            sysctl = "io_uring is restricted by the kernel.io_uring_disabled sysctl (value 1) to CAP_SYS_ADMIN "
                + "and the members of the group in kernel.io_uring_group; add this user to that group, "
                + "or run `sysctl -w kernel.io_uring_disabled=0`"
        case let value?:
            sysctl = "io_uring is disabled by the kernel.io_uring_disabled sysctl (value \(value)); "
                + "run `sysctl -w kernel.io_uring_disabled=0`"
        }
        switch (sysctl, seccompFiltered) {
        case (let sysctl?, true?):
            return sysctl + "; a seccomp filter is also in force on this process and may forbid io_uring too: if so, "
                + seccompFix
        case (let sysctl?, _):
            return sysctl
        case (nil, true?):
            return "a seccomp filter on this process forbids io_uring_setup (Docker's default profile does); "
                + seccompFix
        case (nil, false?):
            return "the kernel refused io_uring_setup although kernel.io_uring_disabled does not forbid it and no "
                + "seccomp filter is in force, so most likely a security module's policy (SELinux, AppArmor) "
                + "forbids it; allow io_uring in that policy"
        case (nil, nil):
            return "io_uring_setup is not permitted, most likely by a seccomp filter (Docker's default profile "
                + "forbids it); " + seccompFix
        }
    }

    /// Whether a seccomp filter is in force on this process (`Seccomp: 2` in
    /// `/proc/self/status`); nil if that cannot be read.
    private static func isSeccompFiltered() -> Bool? {
        guard let status = readFile("/proc/self/status", limit: 16 * 1024) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Seccomp:") {
            return line.dropFirst("Seccomp:".count).filter { !$0.isWhitespace } == "2"
        }
        return nil
    }

    /// The running kernel's release, as `uname -r` prints it.
    private static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The start of a small file (a sysctl, a `/proc` status), at most `limit` bytes.
    private static func readFile(_ path: String, limit: Int = 64) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, limit - filled) }
            if count < 0, Glibc.errno == EINTR { continue }
            guard count > 0 else { break }
            filled += count
        }
        guard filled > 0 else { return nil }
        return String(decoding: buffer[..<filled], as: UTF8.self)
    }
}
