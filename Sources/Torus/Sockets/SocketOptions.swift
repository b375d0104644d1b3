#if canImport(Glibc)
import Glibc
#endif

/// Options applied to a TCP connection when it is created (connected or accepted).
public struct ConnectionOptions: Sendable, Hashable {
    /// Disable Nagle's algorithm so small writes leave at once (`TCP_NODELAY`). On by default.
    public var noDelay: Bool = true
    /// TCP keep-alive probing, off by default.
    public var keepAlive: KeepAlive? = nil
    /// How long sent bytes may stay unacknowledged (and, with ``keepAlive``, probes
    /// unanswered) before the kernel gives up on the connection (`TCP_USER_TIMEOUT`): a peer
    /// that went silent then fails the reads and writes in flight with
    /// ``TorusError/Kind/timedOut``. Nil keeps the kernel's default (about 15 minutes of
    /// retransmissions). Whole milliseconds, at least one.
    public var userTimeout: Duration? = nil
    /// Kernel send buffer size in bytes (`SO_SNDBUF`); nil leaves the system default.
    public var sendBufferSize: Int? = nil
    /// Kernel receive buffer size in bytes (`SO_RCVBUF`); nil leaves the system default.
    public var receiveBufferSize: Int? = nil
    /// The timeout of every read and receive that passes none of its own; nil waits as long
    /// as it takes.
    public var readTimeout: Duration? = nil
    /// The timeout of every write that passes none of its own, and of each `sendmsg` of bytes
    /// queued by ``Connection/send(_:)-(ReceivedBytes)``; nil waits as long as it takes.
    public var writeTimeout: Duration? = nil
    /// How many bytes ``Connection/send(_:)-(ReceivedBytes)`` may queue before a send waits
    /// for the queue to drain (back-pressure toward a peer that reads slowly). 256 KiB by
    /// default; at least one send is always queued, whatever its size.
    public var sendQueueHighWaterMark: Int = Self.defaultSendQueueHighWaterMark

    /// The default ``sendQueueHighWaterMark``: 256 KiB.
    public static let defaultSendQueueHighWaterMark = 256 * 1024

    /// Options with the given values; each argument left out keeps the default above.
    public init(
        noDelay: Bool = true,
        keepAlive: KeepAlive? = nil,
        userTimeout: Duration? = nil,
        sendBufferSize: Int? = nil,
        receiveBufferSize: Int? = nil,
        readTimeout: Duration? = nil,
        writeTimeout: Duration? = nil,
        sendQueueHighWaterMark: Int = Self.defaultSendQueueHighWaterMark
    ) {
        self.noDelay = noDelay
        self.keepAlive = keepAlive
        self.userTimeout = userTimeout
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
        self.readTimeout = readTimeout
        self.writeTimeout = writeTimeout
        self.sendQueueHighWaterMark = sendQueueHighWaterMark
    }

    /// When and how often an idle connection is probed, and how many unanswered probes
    /// close it.
    ///
    /// The kernel counts in whole seconds. Values under a second for ``idle`` or
    /// ``interval``, or under 1 for ``count``, are rejected with
    /// ``TorusError/Kind/invalidArgument`` when the options are applied.
    public struct KeepAlive: Sendable, Hashable {
        /// How long a connection stays idle before the first probe (`TCP_KEEPIDLE`).
        public var idle: Duration
        /// The time between probes while the peer does not answer (`TCP_KEEPINTVL`).
        public var interval: Duration
        /// Unanswered probes after which the kernel drops the connection (`TCP_KEEPCNT`);
        /// reads and writes then fail with ``TorusError/Kind/timedOut``.
        public var count: Int

        /// Keep-alive timing: the first probe after `idle` (60 s by default), then one every
        /// `interval` (10 s), giving up after `count` (6) unanswered probes.
        public init(idle: Duration = .seconds(60), interval: Duration = .seconds(10), count: Int = 6) {
            self.idle = idle
            self.interval = interval
            self.count = count
        }
    }

    /// Applies the options to `fd`. TCP-only options are skipped on Unix-domain sockets.
    func apply(to fd: CInt, isTCP: Bool) throws(TorusError) {
        if isTCP {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, CInt(noDelay ? 1 : 0))
            if let keepAlive {
                try Self.setKeepAlive(fd, keepAlive)
            }
            if let userTimeout {
                try Self.setUserTimeout(fd, userTimeout)
            }
        }
        if let sendBufferSize {
            try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, CInt(clamping: sendBufferSize))
        }
        if let receiveBufferSize {
            try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, CInt(clamping: receiveBufferSize))
        }
    }

    static func setUserTimeout(_ fd: CInt, _ timeout: Duration?) throws(TorusError) {
        // 0 is the kernel's default.
        let milliseconds = timeout.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 } ?? 0
        guard timeout == nil || (milliseconds >= 1 && milliseconds <= Int64(CInt.max)) else {
            throw TorusError(.invalidArgument, operation: .setOption, detail: "TCP_USER_TIMEOUT needs 1 ms to \(CInt.max) ms, not \(timeout!)")
        }
        try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_USER_TIMEOUT, CInt(milliseconds))
    }

    static func setKeepAlive(_ fd: CInt, _ keepAlive: KeepAlive?) throws(TorusError) {
        guard let keepAlive else {
            try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, CInt(0))
            return
        }
        guard keepAlive.count > 0, keepAlive.idle >= .seconds(1), keepAlive.interval >= .seconds(1) else {
            throw TorusError(.invalidArgument, operation: .setOption, detail: "keep-alive needs idle and interval of at least 1 s and a count above 0")
        }
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, CInt(1))
        try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPIDLE, CInt(clamping: keepAlive.idle.components.seconds))
        try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPINTVL, CInt(clamping: keepAlive.interval.components.seconds))
        try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPCNT, CInt(clamping: keepAlive.count))
    }
}

/// Which direction of a connection to shut down.
public enum ShutdownDirection: Sendable, Hashable {
    /// No more writes: the peer reads end of stream once it has read everything sent.
    case write
    /// No more reads.
    case read
    /// Both.
    case both

    var how: CInt {
        switch self {
        case .write: CInt(SHUT_WR)
        case .read: CInt(SHUT_RD)
        case .both: CInt(SHUT_RDWR)
        }
    }
}
