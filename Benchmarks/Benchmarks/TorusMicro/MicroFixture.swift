// The Torus side of the micro-benchmarks: a fixture and the measured operations.
import Torus

#if canImport(Glibc)
import Glibc
#endif

/// One event loop, a loopback listener and a connected TCP pair whose server side echoes on the
/// loop with the zero-copy `receive()` and `write(UnsafeRawBufferPointer)`.
///
/// Every operation runs `iterations` times on the loop (task executor preference), so what is
/// measured is the engine, not thread hops, except in ``hops(iterations:)``.
final class MicroFixture: Sendable {
    let group: EventLoopGroup
    let loop: EventLoop
    let listener: Listener
    let client: Connection
    let server: Connection
    let echo: Task<Void, Never>

    init() async throws {
        group = try EventLoopGroup(loopCount: 1)
        loop = group.loops[0]
        listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0), on: loop)
        client = try await Connection.connect(to: listener.localAddress, on: loop)
        guard let accepted = try await listener.accept() else { throw MicroFixtureError.noConnection }
        server = accepted
        let server = self.server
        echo = Task(executorPreference: loop) { await echoUntilClosed(server) }
    }

    func shutdown() async {
        await client.close()
        await server.close()
        _ = await echo.value
        await listener.close()
        await group.shutdown()
    }

    /// The shortest trip through the ring: `sleep(for: .zero)` (a zero timeout SQE and its
    /// CQE) on the loop.
    func nops(iterations: Int) async throws {
        let loop = self.loop
        try await withTaskExecutorPreference(loop) {
            for _ in 0..<iterations {
                try await loop.sleep(for: .zero)
            }
        }
    }

    /// What the task-group form pays per call: an actor call from a task that prefers the
    /// global concurrent executor, so it hops to the loop (a cross-thread wake-up) and back to
    /// the global pool each time. The call is `receiveBufferSize()`, one getsockopt (about
    /// 0.3 µs): a call with no effect at all (`isOpen`) is optimized into no hop.
    func hops(iterations: Int) async throws {
        let client = self.client
        try await withTaskExecutorPreference(globalConcurrentExecutor) {
            var total = 0
            for _ in 0..<iterations {
                total &+= try await client.receiveBufferSize()
            }
            precondition(total != 0)
        }
    }

    /// A write of `size` bytes and the read of its echo, through `write(UnsafeRawBufferPointer)`
    /// and `read(into:)`.
    func bufferRoundTrips(size: Int, iterations: Int) async throws {
        let client = self.client
        try await withTaskExecutorPreference(loop) {
            try await bufferEcho(size: size, iterations: iterations, client: client)
        }
    }

    /// A write of `size` bytes and the receive of its echo, through `write(UnsafeRawBufferPointer)`
    /// and the zero-copy `receive()` (each `ReceivedBytes` dropped once looked at).
    func receiveRoundTrips(size: Int, iterations: Int) async throws {
        let client = self.client
        try await withTaskExecutorPreference(loop) {
            try await receiveEcho(size: size, iterations: iterations, client: client)
        }
    }

    /// A write of `size` bytes and the read of its echo, through `write(_: [UInt8])` and the
    /// copying `read(maxBytes:) -> [UInt8]?`.
    func arrayRoundTrips(size: Int, iterations: Int) async throws {
        let client = self.client
        let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await withTaskExecutorPreference(loop) {
            var last: [UInt8] = []
            for _ in 0..<iterations {
                try await client.write(message)
                var filled = 0
                while filled < size {
                    guard let bytes = try await client.read(maxBytes: size - filled) else {
                        throw MicroFixtureError.endOfStream
                    }
                    filled += bytes.count
                    last = bytes
                }
            }
            precondition(last.last == message.last, "the echo differs from the message")
        }
    }

    /// A client connect, the server's accept, and both closes (the server's first, so that
    /// TIME_WAIT stays on its side and the client's ephemeral ports are not used up).
    func acceptConnectClose(iterations: Int) async throws {
        let listener = self.listener
        let address = listener.localAddress
        let loop = self.loop
        try await withTaskExecutorPreference(loop) {
            for _ in 0..<iterations {
                let client = try await Connection.connect(to: address, on: loop)
                guard let server = try await listener.accept() else { throw MicroFixtureError.noConnection }
                await server.close()
                await client.close()
            }
        }
    }
}

enum MicroFixtureError: Error {
    case noConnection
    case endOfStream
}

/// The fixture's server side: echoes straight out of the receive buffers until the connection
/// closes. Isolated to the connection: every call is direct, on the loop.
func echoUntilClosed(_ server: isolated Connection) async {
    do {
        while let bytes = try await server.receive() {
            try await bytes.withUnsafeBytes { try await server.write($0) }
        }
    } catch {
        // The fixture is being torn down.
    }
}

func receiveEcho(size: Int, iterations: Int, client: isolated Connection) async throws {
    let message = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    defer { message.deallocate() }
    for index in 0..<size { message[index] = UInt8(truncatingIfNeeded: index &* 31) }
    var lastByte: UInt8 = 0
    for _ in 0..<iterations {
        try await client.write(UnsafeRawBufferPointer(message))
        var received = 0
        while received < size {
            guard let bytes = try await client.receive() else { throw MicroFixtureError.endOfStream }
            received += bytes.count
            lastByte = bytes.withUnsafeBytes { $0[$0.count - 1] }
        }
    }
    precondition(lastByte == message[size - 1], "the echo differs from the message")
}

func bufferEcho(size: Int, iterations: Int, client: isolated Connection) async throws {
    let message = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    let echo = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    defer {
        message.deallocate()
        echo.deallocate()
    }
    for index in 0..<size { message[index] = UInt8(truncatingIfNeeded: index &* 31) }
    for _ in 0..<iterations {
        try await client.write(UnsafeRawBufferPointer(message))
        var filled = 0
        while filled < size {
            let read = try await client.read(into: UnsafeMutableRawBufferPointer(rebasing: echo[filled...]))
            if read == 0 { throw MicroFixtureError.endOfStream }
            filled += read
        }
    }
    precondition(memcmp(message.baseAddress!, echo.baseAddress!, size) == 0, "the echo differs from the message")
}
