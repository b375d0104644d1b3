#if canImport(Glibc)
import Glibc
#endif

/// The few socket calls made directly rather than through the engine: creating a socket and
/// setting it up. None of them blocks; everything that moves data or waits goes through the
/// event loop.
enum SocketSyscalls {
    /// A new socket for `loop`, created with the flags its engine needs.
    static func makeSocket(family: CInt, kind: SocketKind, for loop: EventLoop) throws(TorusError) -> CInt {
        let fd = Glibc.socket(family, loop.socketType(kind), 0)
        guard fd >= 0 else { throw TorusError(errno: errno, operation: .socket) }
        return fd
    }

    static func setOption<Value: BitwiseCopyable>(_ fd: CInt, level: CInt, name: CInt, _ value: Value) throws(TorusError) {
        var value = value
        let rc = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Value>.size))
        guard rc == 0 else {
            throw TorusError(errno: errno, operation: .setOption, detail: "option \(level)/\(name)")
        }
    }

    static func getOption<Value: BitwiseCopyable>(_ fd: CInt, level: CInt, name: CInt, as type: Value.Type, default value: Value) throws(TorusError) -> Value {
        var value = value
        var length = socklen_t(MemoryLayout<Value>.size)
        guard getsockopt(fd, level, name, &value, &length) == 0 else {
            throw TorusError(errno: errno, operation: .setOption, detail: "option \(level)/\(name)")
        }
        return value
    }

    static func bind(_ fd: CInt, to address: SocketAddress) throws(TorusError) {
        var (storage, length) = try address.sockaddr()
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard rc == 0 else { throw TorusError(errno: errno, operation: .bind, address: address) }
    }

    static func listen(_ fd: CInt, backlog: Int32, address: SocketAddress) throws(TorusError) {
        guard Glibc.listen(fd, backlog) == 0 else { throw TorusError(errno: errno, operation: .listen, address: address) }
    }

    /// Shuts down one or both directions (`SHUT_*`). `ENOTCONN` (the peer already closed
    /// both ways) counts as done: the direction is shut all the same.
    static func shutdown(_ fd: CInt, how: CInt, address: SocketAddress) throws(TorusError) {
        guard Glibc.shutdown(fd, how) == 0 || errno == ENOTCONN else {
            throw TorusError(errno: errno, operation: .shutdown, address: address)
        }
    }

    static func localAddress(_ fd: CInt) -> SocketAddress? {
        address(of: fd, using: getsockname)
    }

    static func remoteAddress(_ fd: CInt) -> SocketAddress? {
        address(of: fd, using: getpeername)
    }

    private static func address(
        of fd: CInt,
        using call: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt
    ) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return SocketAddress(storage, length: length)
    }

    /// Whether the kernel aborted the TCP connection on `fd`: it is in TCP_CLOSE, which a
    /// clean end of stream never leads to while this side's write side is open (a peer's FIN
    /// leaves CLOSE_WAIT). A reset or a timeout does; its error goes to whichever call sees it
    /// first, so a read that comes second finds only end of stream, and this tells the two
    /// apart.
    static func wasAborted(_ fd: CInt) -> Bool {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return false }
        return Int(info.tcpi_state) == TCP_CLOSE
    }

    /// Bytes of a TCP connection the peer has acknowledged and bytes the kernel has received
    /// from it, counted by the kernel (`tcpi_bytes_acked`, `tcpi_bytes_received`): they move
    /// while a send sits in the kernel's buffer or a blocked `send` waits, when the
    /// connection's own counters do not. nil for sockets that are not TCP (Unix-domain ones).
    static func kernelProgress(_ fd: CInt) -> KernelProgress? {
        // Glibc's `struct tcp_info` stops at `tcpi_total_retrans`; the kernel's (linux/tcp.h)
        // goes on, and its fields are only ever appended, so their offsets are fixed: the two
        // counters are the 64-bit words at 120 and 128 (Linux 4.1 and 4.2 added them).
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                     UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                     UInt64(0), UInt64(0))
        let needed = 136
        var length = socklen_t(MemoryLayout.size(ofValue: words))
        let rc = withUnsafeMutableBytes(of: &words) { getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &length) }
        guard rc == 0, Int(length) >= needed else { return nil }
        return withUnsafeBytes(of: &words) {
            KernelProgress(acknowledged: $0.load(fromByteOffset: 120, as: UInt64.self),
                           received: $0.load(fromByteOffset: 128, as: UInt64.self))
        }
    }

    /// What ``kernelProgress(_:)`` reads: the kernel's own count of bytes moved.
    struct KernelProgress: Equatable {
        var acknowledged: UInt64
        var received: UInt64
    }
}
