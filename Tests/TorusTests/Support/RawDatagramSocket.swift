import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A raw, blocking IPv4 UDP socket bound to 127.0.0.1, written without Torus: the independent
/// peer for datagram tests. Blocking calls give up after ``RawSocket/blockingLimit``. Not
/// closed automatically: call ``close()``.
struct RawDatagramSocket: Sendable {
    let fd: CInt

    /// A UDP socket bound to 127.0.0.1:`port` (0: the kernel picks).
    static func bound(port: UInt16 = 0) throws -> RawDatagramSocket {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError("socket") }
        var limit = RawSocket.blockingLimit
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = RawSocket.loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = POSIXError("bind")
            Glibc.close(fd)
            throw error
        }
        return RawDatagramSocket(fd: fd)
    }

    /// The local port.
    var port: UInt16 { RawSocket(fd: fd).port }

    /// Sends one datagram to 127.0.0.1:`port`.
    func send(_ bytes: [UInt8], toLoopbackPort port: UInt16) throws {
        var address = RawSocket.loopbackAddress(port: port)
        let sent = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == bytes.count else { throw POSIXError("sendto") }
    }

    /// Receives one datagram (blocking) and the port of its IPv4 sender.
    func receive(maxBytes: Int = 65536) throws -> (bytes: [UInt8], port: UInt16) {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                }
            }
            if count >= 0 { return (Array(buffer[..<count]), UInt16(bigEndian: address.sin_port)) }
            if errno != EINTR { throw POSIXError("recvfrom") }
        }
    }

    func close() { _ = Glibc.close(fd) }
}
