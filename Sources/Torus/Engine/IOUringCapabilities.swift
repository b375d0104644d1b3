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
    static func setupError(errno: Int32) -> TorusError {
        let reason: String
        switch errno {
        case EPERM:
            let disabled = readSysctl("/proc/sys/kernel/io_uring_disabled")
            if let disabled, disabled != "0" {
                reason = "io_uring is disabled by the kernel.io_uring_disabled sysctl (value \(disabled)); "
                    + "run `sysctl -w kernel.io_uring_disabled=0` (or 1 and add this user to kernel.io_uring_group)"
            } else {
                reason = "io_uring_setup is not permitted: a seccomp filter forbids it "
                    + "(Docker's default profile does); run with a seccomp profile that allows "
                    + "io_uring_setup, io_uring_enter and io_uring_register (e.g. docker run --security-opt seccomp=unconfined)"
            }
        case ENOSYS:
            reason = "this kernel has no io_uring (built without CONFIG_IO_URING); Torus needs Linux 6.1 or later"
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

    private static func readSysctl(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self).filter { !$0.isWhitespace }
    }
}
