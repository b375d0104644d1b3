#if canImport(Glibc)
import Glibc
#endif

// Options that can change while a datagram socket is open: broadcast, multicast membership
// and behaviour, kernel buffer sizes. Each throws `TorusError` (`.connectionClosed` after
// close, the kernel's error otherwise).

extension DatagramSocket {
    /// Allows (or forbids) sending to broadcast addresses (`SO_BROADCAST`).
    public func setBroadcast(_ enabled: Bool) throws {
        try checkOpen(.setOption)
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_BROADCAST, CInt(enabled ? 1 : 0))
    }

    /// Sets the kernel's receive buffer size (`SO_RCVBUF`). The kernel doubles the value for
    /// its bookkeeping and caps it at `net.core.rmem_max`.
    public func setReceiveBufferSize(_ bytes: Int) throws {
        try checkOpen(.setOption)
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, try Options.size(bytes))
    }

    /// Sets the kernel's send buffer size (`SO_SNDBUF`).
    public func setSendBufferSize(_ bytes: Int) throws {
        try checkOpen(.setOption)
        try SocketSyscalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, try Options.size(bytes))
    }

    /// The kernel's receive buffer size in bytes.
    public func receiveBufferSize() throws -> Int {
        try checkOpen(.setOption)
        return Int(try SocketSyscalls.getOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, as: CInt.self, default: 0))
    }

    /// The kernel's send buffer size in bytes.
    public func sendBufferSize() throws -> Int {
        try checkOpen(.setOption)
        return Int(try SocketSyscalls.getOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, as: CInt.self, default: 0))
    }

    // MARK: Multicast

    /// Joins IPv4 multicast group `group` on the interface with index `interfaceIndex`
    /// (0: the kernel picks one by route; see ``interfaceIndex(named:)``). The socket then
    /// receives the group's datagrams sent to its port.
    ///
    /// - Throws: ``TorusError/Kind/invalidAddress`` if `group` is not a multicast address
    ///   (224.0.0.0/4), or the kernel's error (``TorusError/Kind/addressInUse`` when already
    ///   joined).
    public func joinMulticastGroup(_ group: IPv4Address, interfaceIndex: UInt32 = 0) throws {
        try membership(IP_ADD_MEMBERSHIP, group, interfaceIndex: interfaceIndex, operation: .joinGroup)
    }

    /// Leaves IPv4 multicast group `group` joined with ``joinMulticastGroup(_:interfaceIndex:)-(IPv4Address,_)``.
    public func leaveMulticastGroup(_ group: IPv4Address, interfaceIndex: UInt32 = 0) throws {
        try membership(IP_DROP_MEMBERSHIP, group, interfaceIndex: interfaceIndex, operation: .leaveGroup)
    }

    /// Joins IPv6 multicast group `group` (`ff00::/8`) on interface `interfaceIndex` (0: the
    /// kernel picks one). The socket must be an IPv6 socket.
    ///
    /// - Throws: ``TorusError/Kind/invalidAddress`` if `group` is not multicast or the socket
    ///   is IPv4, or the kernel's error.
    public func joinMulticastGroup(_ group: IPv6Address, interfaceIndex: UInt32 = 0) throws {
        try membership(IPV6_ADD_MEMBERSHIP, group, interfaceIndex: interfaceIndex, operation: .joinGroup)
    }

    /// Leaves IPv6 multicast group `group`.
    public func leaveMulticastGroup(_ group: IPv6Address, interfaceIndex: UInt32 = 0) throws {
        try membership(IPV6_DROP_MEMBERSHIP, group, interfaceIndex: interfaceIndex, operation: .leaveGroup)
    }

    /// Chooses the interface multicast datagrams are sent from (`IP_MULTICAST_IF` or
    /// `IPV6_MULTICAST_IF`); 0 returns to the kernel's choice by route.
    public func setMulticastInterface(_ interfaceIndex: UInt32) throws {
        try checkOpen(.setOption)
        if isIPv6 {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_IF, CInt(bitPattern: interfaceIndex))
        } else {
            var request = ip_mreqn()
            request.imr_ifindex = CInt(bitPattern: interfaceIndex)
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IP), name: IP_MULTICAST_IF, request)
        }
    }

    /// Whether this host's own sockets in the group receive the multicast datagrams this
    /// socket sends (`IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`; on by default).
    public func setMulticastLoop(_ enabled: Bool) throws {
        try checkOpen(.setOption)
        if isIPv6 {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_LOOP, CInt(enabled ? 1 : 0))
        } else {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IP), name: IP_MULTICAST_LOOP, CInt(enabled ? 1 : 0))
        }
    }

    /// How many routers multicast datagrams may cross (`IP_MULTICAST_TTL` /
    /// `IPV6_MULTICAST_HOPS`, 0 to 255; the default 1 keeps them on the local network).
    public func setMulticastHops(_ hops: Int) throws {
        try checkOpen(.setOption)
        guard (0...255).contains(hops) else {
            throw TorusError(.invalidArgument, operation: .setOption, detail: "multicast hops must be 0 to 255, not \(hops)")
        }
        if isIPv6 {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_HOPS, CInt(hops))
        } else {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IP), name: IP_MULTICAST_TTL, CInt(hops))
        }
    }

    /// The index of the network interface called `name` (`"lo"`, `"eth0"`), for the
    /// multicast calls; nil if there is none.
    public nonisolated static func interfaceIndex(named name: String) -> UInt32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : index
    }

    private var isIPv6: Bool {
        if case .ipv6 = localAddress { true } else { false }
    }

    private func membership(_ option: CInt, _ group: IPv4Address, interfaceIndex: UInt32, operation: TorusError.Operation) throws {
        try checkOpen(operation)
        guard group.isMulticast else {
            throw TorusError(.invalidAddress, operation: operation, address: .ipv4(group, port: 0),
                             detail: "\(group) is not a multicast address (224.0.0.0/4)")
        }
        var request = ip_mreqn()
        request.imr_multiaddr = in_addr(s_addr: group.rawValue)
        request.imr_ifindex = CInt(bitPattern: interfaceIndex)
        do throws(TorusError) {
            try SocketSyscalls.setOption(fd, level: Int32(IPPROTO_IP), name: option, request)
        } catch {
            throw TorusError(errno: error.errno ?? EINVAL, operation: operation, address: .ipv4(group, port: 0))
        }
    }

    private func membership(_ option: CInt, _ group: IPv6Address, interfaceIndex: UInt32, operation: TorusError.Operation) throws {
        try checkOpen(operation)
        guard group.isMulticast, isIPv6 else {
            throw TorusError(.invalidAddress, operation: operation, address: .ipv6(group, port: 0),
                             detail: isIPv6 ? "\(group) is not a multicast address (ff00::/8)" : "an IPv4 socket cannot join an IPv6 group")
        }
        var request = ipv6_mreq()
        request.ipv6mr_multiaddr = group.in6
        request.ipv6mr_interface = interfaceIndex
        let rc = withUnsafeBytes(of: &request) { raw in
            setsockopt(fd, Int32(IPPROTO_IPV6), option, raw.baseAddress, socklen_t(raw.count))
        }
        if rc != 0 {
            throw TorusError(errno: errno, operation: operation, address: .ipv6(group, port: 0))
        }
    }
}
