import Testing
#if canImport(Glibc)
import Glibc
#endif

// Plain POSIX sockets and threads, written without Torus, to act as an independent peer: a
// bug shared by both ends of a Torus-to-Torus test could cancel out; against these it cannot.

/// A failed system call in a test helper.
struct POSIXError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }
    var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// A raw IPv4 TCP socket descriptor. Not closed automatically: call ``close()``.
struct RawSocket: Sendable {
    let fd: CInt

    /// A new TCP socket (blocking unless `nonBlocking`).
    static func tcp(nonBlocking: Bool = false) throws -> RawSocket {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw POSIXError("socket") }
        let socket = RawSocket(fd: fd)
        if !nonBlocking { socket.limitBlocking() }
        return socket
    }

    /// How long a blocking call (accept, send, recv) may wait before failing with `EAGAIN`,
    /// so that a test whose Torus side broke fails instead of hanging a helper thread forever.
    static let blockingLimit = timeval(tv_sec: 15, tv_usec: 0)

    private func limitBlocking() {
        var limit = Self.blockingLimit
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A socket bound to 127.0.0.1 on a port the kernel picks, not listening.
    static func boundToLoopback() throws -> RawSocket {
        let socket = try tcp()
        do {
            try socket.bindLoopback(port: 0)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// A socket listening on 127.0.0.1 on a port the kernel picks.
    static func listening(backlog: CInt = 16) throws -> RawSocket {
        let socket = try boundToLoopback()
        guard listen(socket.fd, backlog) == 0 else {
            let error = POSIXError("listen")
            socket.close()
            throw error
        }
        return socket
    }

    /// A blocking socket connected to 127.0.0.1:`port` (loopback connects complete at once
    /// when the peer listens, whether or not it has accepted yet).
    /// `receiveBufferSize` (`SO_RCVBUF`, set before connecting so that the window follows it)
    /// makes a reader that falls behind stall the sender sooner.
    static func connected(toLoopbackPort port: UInt16, receiveBufferSize: CInt? = nil) throws -> RawSocket {
        let socket = try tcp()
        if let receiveBufferSize { socket.setReceiveBufferSize(receiveBufferSize) }
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let error = POSIXError("connect")
            socket.close()
            throw error
        }
        return socket
    }

    /// Starts a non-blocking connect to 127.0.0.1:`port`; the connect may still be in progress.
    static func connecting(toLoopbackPort port: UInt16) throws -> RawSocket {
        let socket = try tcp(nonBlocking: true)
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 || errno == EINPROGRESS else {
            let error = POSIXError("connect")
            socket.close()
            throw error
        }
        return socket
    }

    static func loopbackAddress(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    func bindLoopback(port: UInt16) throws {
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = Self.loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw POSIXError("bind") }
    }

    /// The local port.
    var port: UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Accepts one connection (blocks until one is queued).
    func accept() throws -> RawSocket {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                let socket = RawSocket(fd: client)
                socket.limitBlocking()
                return socket
            }
            if errno != EINTR { throw POSIXError("accept") }
        }
    }

    /// Makes the next `close()` reset the connection (`SO_LINGER` on with a zero timeout).
    func setLingerZero() throws {
        var option = linger(l_onoff: 1, l_linger: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size)) == 0 else {
            throw POSIXError("setsockopt(SO_LINGER)")
        }
    }

    func setReceiveBufferSize(_ bytes: CInt) {
        var value = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<CInt>.size))
    }

    /// Sends every byte (blocking socket). Never raises SIGPIPE.
    func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw POSIXError("send")
                }
                offset += count
            }
        }
    }

    /// Receives up to `maxBytes` (blocking); empty at end of stream.
    func receive(maxBytes: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count >= 0 { return Array(buffer[..<count]) }
            if errno != EINTR { throw POSIXError("recv") }
        }
    }

    /// Waits up to `milliseconds` for `events` (`POLLIN`, `POLLOUT`); returns the events that
    /// occurred, 0 on timeout.
    func poll(_ events: Int32, milliseconds: CInt) -> Int16 {
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        while true {
            let rc = Glibc.poll(&entry, 1, milliseconds)
            if rc >= 0 { return rc == 0 ? 0 : entry.revents }
            if errno != EINTR { return Int16(POLLERR) }
        }
    }

    /// The TCP state (`TCP_ESTABLISHED`, `TCP_SYN_SENT`, …) from `TCP_INFO`.
    var tcpState: UInt8 {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length)
        return info.tcpi_state
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    func close() { _ = Glibc.close(fd) }
}

/// A raw listening socket whose accept queue is full, so that the kernel drops new SYNs and a
/// connect to it stays pending until the client gives up.
///
/// Linux accepts a connection into a listener's queue while the queue holds no more than
/// `backlog` connections (here 0), and drops SYNs once it is full. This listener never
/// accepts; filler connects are made until one stays in `SYN_SENT`.
struct UnresponsiveListener {
    let listener: RawSocket
    private(set) var fillers: [RawSocket] = []

    var port: UInt16 { listener.port }

    init() throws {
        listener = try RawSocket.listening(backlog: 0)
        do {
            for _ in 0..<16 {
                let filler = try RawSocket.connecting(toLoopbackPort: listener.port)
                fillers.append(filler)
                // An established connect is writable at once; one whose SYN was dropped is
                // not writable until the kernel retransmits (a second or more later).
                if filler.poll(POLLOUT, milliseconds: 200) == 0, filler.tcpState == UInt8(TCP_SYN_SENT) {
                    return
                }
            }
            throw POSIXError("filling the accept queue", errno: EAGAIN)
        } catch {
            close()
            throw error
        }
    }

    func close() {
        for filler in fillers { filler.close() }
        listener.close()
    }
}

// MARK: - Threads

/// What a POSIX thread runs; passed through `pthread_create`'s `void *` argument.
private final class ThreadStart: @unchecked Sendable {
    // @unchecked Sendable: created by the starting thread, then used only by the new thread.
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// The C entry point of helper threads. It must be a global function: a C function pointer
/// cannot capture context, so the work arrives through the argument.
private func posixThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue().body()
    return nil
}

/// Runs `work` on a new plain pthread (not a Swift concurrency thread), suspending the calling
/// task, without blocking it, until the work is done; then joins the thread.
func onPOSIXThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    var thread = pthread_t()
    let value: T = await withCheckedContinuation { continuation in
        let start = ThreadStart { continuation.resume(returning: work()) }
        let rc = pthread_create(&thread, nil, posixThreadMain, Unmanaged.passRetained(start).toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }
    // The thread resumed us as its last act; joining waits only for it to exit.
    pthread_join(thread, nil)
    return value
}

/// A POSIX semaphore, for waits that must block a thread (not suspend a task).
final class POSIXSemaphore: @unchecked Sendable {
    // @unchecked Sendable: sem_t is made for use from several threads at once.
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() { sem_init(semaphore, 0, 0) }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    func post() { sem_post(semaphore) }

    /// Blocks the calling thread until posted, or for at most `milliseconds`; false on timeout.
    func wait(milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanoseconds = deadline.tv_nsec + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        while true {
            if sem_timedwait(semaphore, &deadline) == 0 { return true }
            if errno != EINTR { return false }
        }
    }
}
