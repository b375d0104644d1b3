#if canImport(Glibc)
import Glibc
#endif

/// The error Torus throws: what went wrong, during which operation, the `errno` behind it and
/// the address involved, where known.
///
/// Match on ``kind`` to tell the common cases apart:
///
/// ```swift
/// do {
///     let connection = try await Connection.connect(to: address, timeout: .seconds(2))
/// } catch let error as TorusError where error.kind == .connectionRefused {
///     // nothing listens there
/// }
/// ```
///
/// Task cancellation is reported as `CancellationError`, not as a `TorusError`. The end of a
/// stream is not an error: ``Connection/read(maxBytes:timeout:)`` returns `nil`.
public struct TorusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the operation.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The peer refused the connection: nothing listens at the address (`ECONNREFUSED`).
        public static let connectionRefused = Kind("connection refused")
        /// The peer reset the connection (`ECONNRESET`), or it was closed while data was
        /// still being written to it (`EPIPE`).
        public static let connectionReset = Kind("connection reset by peer")
        /// The operation did not finish within its timeout (or the kernel's, `ETIMEDOUT`).
        public static let timedOut = Kind("timed out")
        /// The address is already bound by another socket (`EADDRINUSE`).
        public static let addressInUse = Kind("address in use")
        /// The address is not available on this machine (`EADDRNOTAVAIL`).
        public static let addressNotAvailable = Kind("address not available")
        /// The connection or listener was closed by this side before or during the operation,
        /// or its write side was shut down.
        public static let connectionClosed = Kind("connection closed")
        /// The network or host cannot be reached (`ENETUNREACH`, `EHOSTUNREACH`).
        public static let unreachable = Kind("unreachable")
        /// The string is not a valid socket address or the port is out of range.
        public static let invalidAddress = Kind("invalid address")
        /// The host name could not be resolved.
        public static let hostNotFound = Kind("host not found")
        /// Another task is already reading from this connection.
        public static let concurrentRead = Kind("concurrent read")
        /// The process or system ran out of file descriptors (`EMFILE`, `ENFILE`).
        public static let tooManyOpenFiles = Kind("too many open files")
        /// io_uring cannot be used here; ``TorusError/detail`` says why and what to do.
        public static let ioUringUnavailable = Kind("io_uring unavailable")
        /// The event loop the operation needed has shut down.
        public static let eventLoopShutDown = Kind("event loop shut down")
        /// An invalid argument or option value.
        public static let invalidArgument = Kind("invalid argument")
        /// A datagram is larger than the socket can send in one piece (`EMSGSIZE`).
        public static let messageTooLong = Kind("message too long")
        /// Any other system error; see ``TorusError/errno``.
        public static let system = Kind("system error")
    }

    /// The operation that failed.
    public struct Operation: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let ringSetup = Operation("io_uring setup")
        public static let parseAddress = Operation("parse address")
        public static let resolve = Operation("resolve")
        public static let socket = Operation("socket")
        public static let setOption = Operation("setsockopt")
        public static let bind = Operation("bind")
        public static let listen = Operation("listen")
        public static let accept = Operation("accept")
        public static let connect = Operation("connect")
        public static let read = Operation("read")
        public static let write = Operation("write")
        public static let shutdown = Operation("shutdown")
        /// Sending a datagram.
        public static let send = Operation("send")
        /// Receiving a datagram.
        public static let receive = Operation("receive")
        /// Joining a multicast group.
        public static let joinGroup = Operation("join multicast group")
        /// Leaving a multicast group.
        public static let leaveGroup = Operation("leave multicast group")
        public static let close = Operation("close")
        public static let sleep = Operation("sleep")
    }

    /// What went wrong.
    public let kind: Kind
    /// The operation that failed.
    public let operation: Operation
    /// The system error number, when the failure came from the kernel.
    public let errno: Int32?
    /// The local or remote address involved, when known.
    public let address: SocketAddress?
    /// More about the cause, and for set-up errors what to do about it.
    public let detail: String?

    public init(_ kind: Kind, operation: Operation, errno: Int32? = nil, address: SocketAddress? = nil, detail: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.errno = errno
        self.address = address
        self.detail = detail
    }

    /// An error for a failed system call, its kind derived from `errno`.
    init(errno: Int32, operation: Operation, address: SocketAddress? = nil, detail: String? = nil) {
        self.init(Self.kind(forErrno: errno), operation: operation, errno: errno, address: address, detail: detail)
    }

    static func kind(forErrno errno: Int32) -> Kind {
        switch errno {
        case ECONNREFUSED: .connectionRefused
        case ECONNRESET, EPIPE, ECONNABORTED: .connectionReset
        case ETIMEDOUT, ETIME: .timedOut
        case EADDRINUSE: .addressInUse
        case EADDRNOTAVAIL: .addressNotAvailable
        case ENETUNREACH, EHOSTUNREACH, ENETDOWN: .unreachable
        case EMFILE, ENFILE: .tooManyOpenFiles
        case ESHUTDOWN: .eventLoopShutDown
        case EINVAL: .invalidArgument
        case EMSGSIZE: .messageTooLong
        default: .system
        }
    }

    /// `strerror` text and symbolic name for an errno.
    static func describe(errno: Int32) -> String {
        String(cString: strerror(errno)) + " (errno \(errno))"
    }

    public var description: String {
        var text = "\(operation) failed: \(kind)"
        if let address { text += " [\(address)]" }
        if let errno { text += ": " + Self.describe(errno: errno) }
        if let detail { text += ": " + detail }
        return text
    }
}
