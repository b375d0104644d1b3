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
        /// A short name for the kind, as in `connection refused`.
        public var description: String { name }

        /// The peer refused the connection: nothing listens at the address (`ECONNREFUSED`).
        /// On a connected ``DatagramSocket``: an earlier datagram was refused by the peer's
        /// host (ICMP port unreachable).
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
        /// The socket was closed by this side before or during the operation, or, for a
        /// write, the connection's write side was shut down.
        public static let connectionClosed = Kind("connection closed")
        /// The network or host cannot be reached (`ENETUNREACH`, `EHOSTUNREACH`).
        public static let unreachable = Kind("unreachable")
        /// The address is not valid here: text that does not parse as a socket address, a
        /// port out of range, a Unix-domain path that is empty or too long, an address of a
        /// family the socket cannot use, or a group that is not a multicast address.
        public static let invalidAddress = Kind("invalid address")
        /// The host name could not be resolved.
        public static let hostNotFound = Kind("host not found")
        /// Another task is already reading from this connection, or receiving on this
        /// datagram socket.
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
        /// A write on this connection was cancelled after part of its bytes went out: the
        /// stream has a gap, so the connection takes no more writes or sends. (A write that
        /// failed or timed out part-way leaves the connection the same way, and later writes
        /// report that error, whose detail says how many bytes went out.)
        public static let incompleteWrite = Kind("incomplete write")
        /// A frame is longer than the limit its reader was given (see ``BufferedReader``).
        public static let frameTooLong = Kind("frame too long")
        /// The stream ended in the middle of a frame: the bytes after the last whole frame
        /// are not a frame.
        public static let truncatedFrame = Kind("truncated frame")
        /// Bytes that do not make a valid frame (a decoder's verdict, see ``FrameDecoder``).
        public static let malformedFrame = Kind("malformed frame")
        /// Any other system error; see ``TorusError/errno``.
        public static let system = Kind("system error")
    }

    /// The operation that failed.
    public struct Operation: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A short name for the operation, as in `connect`.
        public var description: String { name }

        /// Setting up an event loop's io_uring and its receive buffers.
        public static let ringSetup = Operation("io_uring setup")
        /// Starting an event loop: choosing its engine, its thread, its epoll instance and
        /// its receive buffers.
        public static let eventLoopSetup = Operation("event loop setup")
        /// Parsing a socket address, from text or for the kernel.
        public static let parseAddress = Operation("parse address")
        /// Resolving a host name.
        public static let resolve = Operation("resolve")
        /// Creating a socket.
        public static let socket = Operation("socket")
        /// Setting or reading a socket option.
        public static let setOption = Operation("setsockopt")
        /// Binding a socket to its local address.
        public static let bind = Operation("bind")
        /// Starting to listen for connections.
        public static let listen = Operation("listen")
        /// Accepting a connection.
        public static let accept = Operation("accept")
        /// Connecting a stream or datagram socket to its peer.
        public static let connect = Operation("connect")
        /// Reading from a connection.
        public static let read = Operation("read")
        /// Writing to a connection, including bytes queued by ``Connection/send(_:)-(ReceivedBytes)``.
        public static let write = Operation("write")
        /// Shutting down one direction of a connection.
        public static let shutdown = Operation("shutdown")
        /// Sending a datagram.
        public static let send = Operation("send")
        /// Receiving a datagram.
        public static let receive = Operation("receive")
        /// Joining a multicast group.
        public static let joinGroup = Operation("join multicast group")
        /// Leaving a multicast group.
        public static let leaveGroup = Operation("leave multicast group")
        /// Closing a socket.
        public static let close = Operation("close")
        /// Sleeping on an event loop (``EventLoop/sleep(for:)``).
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

    /// An error of `kind` during `operation`, with what else is known about it.
    ///
    /// Torus makes these itself; the initializer is public so that code built on Torus, and
    /// tests, can throw the same errors.
    ///
    /// - Parameters:
    ///   - kind: What went wrong.
    ///   - operation: The operation that failed.
    ///   - errno: The system error number behind the failure, if any.
    ///   - address: The local or remote address involved, if any.
    ///   - detail: More about the cause, for people to read.
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

    /// One line with the operation, the kind, the address, the system error and the detail,
    /// as in `connect failed: connection refused [127.0.0.1:9]: Connection refused (errno 111)`.
    public var description: String {
        var text = "\(operation) failed: \(kind)"
        if let address { text += " [\(address)]" }
        if let errno { text += ": " + Self.describe(errno: errno) }
        if let detail { text += ": " + detail }
        return text
    }
}
