#if canImport(Glibc)
import Glibc
#endif

extension DatagramSocket {
    /// Options set on a datagram socket before it is bound. Each can also be changed later
    /// on the socket (``DatagramSocket/setBroadcast(_:)``, …), except the reuse and IPv6-only
    /// options, which only matter for the bind.
    public struct Options: Sendable, Hashable {
        /// `SO_REUSEADDR`: bind to an address other sockets are bound to as well (needed by
        /// several receivers of one multicast group). Off by default, so that binding to a
        /// port in use fails with ``TorusError/Kind/addressInUse``.
        public var reuseAddress = false
        /// `SO_REUSEPORT`: let several sockets bind the same address and port, the kernel
        /// spreading incoming datagrams among them.
        public var reusePort = false
        /// `IPV6_V6ONLY` for IPv6 sockets: true to receive IPv6 only, false for dual stack;
        /// nil keeps the system default.
        public var ipv6Only: Bool? = nil
        /// `SO_BROADCAST`: allow sending to broadcast addresses. Off by default.
        public var broadcast = false
        /// Kernel receive buffer size in bytes (`SO_RCVBUF`); nil leaves the system default.
        /// Datagrams that arrive while it is full are dropped by the kernel.
        public var receiveBufferSize: Int? = nil
        /// Kernel send buffer size in bytes (`SO_SNDBUF`); nil leaves the system default.
        public var sendBufferSize: Int? = nil

        /// Options with the defaults above, changed by the arguments given.
        public init(
            reuseAddress: Bool = false, reusePort: Bool = false, ipv6Only: Bool? = nil, broadcast: Bool = false,
            receiveBufferSize: Int? = nil, sendBufferSize: Int? = nil
        ) {
            self.reuseAddress = reuseAddress
            self.reusePort = reusePort
            self.ipv6Only = ipv6Only
            self.broadcast = broadcast
            self.receiveBufferSize = receiveBufferSize
            self.sendBufferSize = sendBufferSize
        }

        /// Applies the options to a new socket of `family`.
        func apply(to fd: CInt, family: CInt) throws(TorusError) {
            if reuseAddress {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, CInt(1))
            }
            if reusePort {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, CInt(1))
            }
            if family == AF_INET6, let ipv6Only {
                try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, CInt(ipv6Only ? 1 : 0))
            }
            if broadcast {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_BROADCAST, CInt(1))
            }
            if let receiveBufferSize {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, try Self.size(receiveBufferSize))
            }
            if let sendBufferSize {
                try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, try Self.size(sendBufferSize))
            }
        }

        static func size(_ bytes: Int) throws(TorusError) -> CInt {
            guard bytes > 0 else {
                throw TorusError(.invalidArgument, operation: .setOption, detail: "a buffer size must be positive, not \(bytes)")
            }
            return CInt(clamping: bytes)
        }
    }
}
