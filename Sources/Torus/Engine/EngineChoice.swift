import CURing
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension EventLoopGroup {
    /// Which engine a group's loops run.
    public enum EngineChoice: Sendable, Hashable, CustomStringConvertible {
        /// io_uring where the kernel allows this process to use it, epoll otherwise (logging
        /// one notice that says why). The `TORUS_ENGINE` environment variable (`io_uring`,
        /// `epoll` or `auto`) overrides this default.
        case automatic
        /// io_uring, or a ``TorusError`` of kind ``TorusError/Kind/ioUringUnavailable`` saying
        /// why it cannot run here and what to do.
        case ioUring
        /// epoll, even where io_uring could run.
        case epoll

        /// `automatic`, `io_uring` or `epoll`.
        public var description: String {
            switch self {
            case .automatic: "automatic"
            case .ioUring: "io_uring"
            case .epoll: "epoll"
            }
        }

        /// The engine this choice means here: the environment's choice for ``automatic``, then
        /// the probe's answer.
        func resolve() throws(TorusError) -> EventLoop.Engine {
            var choice = self
            if choice == .automatic { choice = try Self.fromEnvironment() }
            switch choice {
            case .ioUring: return .ioUring
            case .epoll: return .epoll
            case .automatic:
                guard let reason = IOUringProbe.unavailability else { return .ioUring }
                IOUringProbe.noticeFallbackOnce(reason)
                return .epoll
            }
        }

        /// The choice `TORUS_ENGINE` names; ``automatic`` when it is not set.
        static func fromEnvironment() throws(TorusError) -> EngineChoice {
            guard let raw = getenv("TORUS_ENGINE") else { return .automatic }
            switch String(cString: raw).lowercased() {
            case "", "auto", "automatic": return .automatic
            case "io_uring", "iouring", "uring": return .ioUring
            case "epoll": return .epoll
            case let other:
                throw TorusError(.invalidArgument, operation: .eventLoopSetup,
                                 detail: "TORUS_ENGINE must be io_uring, epoll or auto, not '\(other)'")
            }
        }
    }
}

/// Whether this process can use io_uring as Torus needs it, found once per process: a small
/// ring is set up, a provided-buffer ring registered, and every opcode Torus uses looked up
/// (as Netty's `IoUring.isAvailable` does).
enum IOUringProbe {
    /// Why io_uring cannot serve here, or nil when it can.
    static var unavailability: TorusError? { result.withLock { result in
        if result == nil { result = probe() }
        return result!
    }.failure }

    private static let result = Mutex<Result<Void, TorusError>?>(nil)
    private static let noticed = Atomic<Bool>(false)

    /// The opcodes every loop needs.
    static let requiredOpcodes: [(io_uring_op, String)] = [
        (IORING_OP_NOP, "NOP"), (IORING_OP_READ, "READ"), (IORING_OP_ACCEPT, "ACCEPT"),
        (IORING_OP_CONNECT, "CONNECT"), (IORING_OP_RECV, "RECV"), (IORING_OP_SEND, "SEND"),
        (IORING_OP_RECVMSG, "RECVMSG"), (IORING_OP_SENDMSG, "SENDMSG"), (IORING_OP_CLOSE, "CLOSE"),
        (IORING_OP_TIMEOUT, "TIMEOUT"), (IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"),
        (IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"),
    ]

    private static func probe() -> Result<Void, TorusError> {
        do throws(TorusError) {
            var ring = try Ring(entries: 8)
            defer { ring.close() }
            let missing = requiredOpcodes.filter { !ring.capabilities.supports($0.0) }.map(\.1)
            if !ring.capabilities.supportedOpcodes.isEmpty, !missing.isEmpty {
                throw TorusError(.ioUringUnavailable, operation: .ringSetup,
                                 detail: "the kernel's io_uring lacks \(missing.joined(separator: ", ")); Torus needs Linux 6.1 or later")
            }
            let buffers = try ring.registerBufferRing(entries: 1, group: 0)
            ring.close()
            munmap(UnsafeMutableRawPointer(buffers), MemoryLayout<io_uring_buf>.stride)
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    /// Logs, once per process, that loops run on epoll and why.
    static func noticeFallbackOnce(_ reason: TorusError) {
        guard !noticed.exchange(true, ordering: .relaxed) else { return }
        Logger(label: "torus").notice("io_uring is unavailable, using epoll: \(reason)")
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
