import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Bytes

/// SplitMix64: a small, fast, seedable generator, so a failing payload can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `count` pseudo-random bytes from `seed`.
func randomBytes(_ count: Int, seed: UInt64 = UInt64.random(in: .min ... .max)) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let raw = UnsafeMutableRawBufferPointer(buffer)
        var offset = 0
        while offset + 8 <= count {
            raw.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            raw[offset] = UInt8(truncatingIfNeeded: generator.next())
            offset += 1
        }
        initialized = count
    }
}

/// Compares two byte arrays with `memcmp` (element-wise `==` is slow in debug builds) and
/// describes the first difference.
func difference(_ actual: [UInt8], _ expected: [UInt8]) -> String? {
    let common = min(actual.count, expected.count)
    let equalPrefix = actual.withUnsafeBytes { a in
        expected.withUnsafeBytes { e in
            common == 0 || memcmp(a.baseAddress!, e.baseAddress!, common) == 0
        }
    }
    if equalPrefix {
        return actual.count == expected.count ? nil : "got \(actual.count) bytes, expected \(expected.count)"
    }
    let index = (0..<common).first { actual[$0] != expected[$0] }!
    return "got \(actual.count) bytes, expected \(expected.count); first difference at byte \(index)"
}

/// Expects `actual` to equal `expected` byte for byte.
func expectSameBytes(
    _ actual: [UInt8], _ expected: [UInt8], _ what: String = "bytes",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    if let difference = difference(actual, expected) {
        Issue.record("\(what) differ: \(difference)", sourceLocation: sourceLocation)
    }
}

// MARK: - Connections

extension Connection {
    /// Reads until end of stream and returns everything read.
    func readToEnd(maxBytes: Int = 65536) async throws -> [UInt8] {
        var received: [UInt8] = []
        while let chunk = try await read(maxBytes: maxBytes) {
            received.append(contentsOf: chunk)
        }
        return received
    }

    /// Reads exactly `count` bytes, failing if the stream ends first.
    func read(exactly count: Int) async throws -> [UInt8] {
        var received: [UInt8] = []
        received.reserveCapacity(count)
        while received.count < count {
            guard let chunk = try await read(maxBytes: Swift.min(65536, count - received.count)) else {
                throw TestFailure("stream ended after \(received.count) of \(count) bytes")
            }
            received.append(contentsOf: chunk)
        }
        return received
    }
}

/// A failure in a test's own logic.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Connection {
    /// Starts a task that reads once. It is isolated to this connection (or, with
    /// `preferringLoop`, also prefers its loop as task executor), so its first job is queued
    /// on the connection's loop before this method returns.
    func startReading(maxBytes: Int = 16 * 1024, preferringLoop: Bool = false) -> Task<[UInt8]?, any Error> {
        if preferringLoop {
            return Task(executorPreference: eventLoop) { try await self.read(maxBytes: maxBytes) }
        }
        return Task { try await self.read(maxBytes: maxBytes) }
    }
}

/// Starts a read on `connection` in another task and returns once that read is waiting.
///
/// No timing involved: the reader's first job is queued on the connection's loop before
/// anything this function does next, and the loop, a serial executor, runs jobs in order.
/// Each call on the same actor that completes afterwards means every job queued before it
/// has run; the reader may hop a few times (task executor to actor, and inside the engine)
/// before it suspends in the kernel wait, so this makes several such calls.
func startPendingRead(
    on connection: Connection, maxBytes: Int = 16 * 1024, preferringLoop: Bool = false
) async -> Task<[UInt8]?, any Error> {
    let reader = await connection.startReading(maxBytes: maxBytes, preferringLoop: preferringLoop)
    for _ in 0..<4 { _ = await connection.isOpen }
    return reader
}

/// Gives a task time to reach a wait this test cannot observe from outside (an accept or a
/// connect in the kernel). Correctness never depends on it: cancelling before the wait starts
/// must give the same result. It only makes the interesting case, cancelling a wait already in
/// the kernel, the likely one.
func letTaskReachItsWait() async throws {
    try await EventLoopGroup.shared.next().sleep(for: .milliseconds(50))
}

// MARK: - Echo server

/// Echoes everything it reads until end of stream, then closes. Closes on error too.
func echo(_ connection: Connection) async throws {
    do {
        while let chunk = try await connection.read(maxBytes: 65536) {
            try await connection.write(chunk)
        }
    } catch {
        await connection.close()
        throw error
    }
    await connection.close()
}

/// Serves every connection of `listener` with ``echo(_:)`` in a child task on the
/// connection's loop, until the listener is closed and every connection has ended.
func serveEcho(_ listener: Listener) async throws {
    try await withThrowingDiscardingTaskGroup { group in
        for try await connection in listener {
            group.addTask(executorPreference: connection.eventLoop) {
                try await echo(connection)
            }
        }
    }
}

/// Runs a Torus echo server on `address` while `body` runs, then closes the listener and
/// waits for the server (and every connection it served) to finish. A server error fails the
/// call. Clients must be closed by the time `body` returns.
func withEchoServer<T: Sendable>(
    on address: SocketAddress = .ipv4(.loopback, port: 0),
    _ body: (SocketAddress) async throws -> T
) async throws -> T {
    let listener = try await Listener(bindingTo: address)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serveEcho(listener) }
        let result: T
        do {
            result = try await body(listener.localAddress)
        } catch {
            await listener.close()
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
        await listener.close()
        try await group.waitForAll()
        return result
    }
}

/// Accepts exactly one connection from a fresh listener on `address` while `connect` runs,
/// and returns both ends. The listener is closed before returning.
func connectedPair(
    _ address: SocketAddress = .ipv4(.loopback, port: 0),
    options: ConnectionOptions = .init()
) async throws -> (client: Connection, server: Connection) {
    var listenerOptions = Listener.Options()
    listenerOptions.connectionOptions = options
    let listener = try await Listener(bindingTo: address, options: listenerOptions)
    do {
        async let accepted = listener.accept()
        let client = try await Connection.connect(to: listener.localAddress, options: options)
        guard let server = try await accepted else {
            await client.close()
            throw TestFailure("listener ended without a connection")
        }
        await listener.close()
        return (client, server)
    } catch {
        await listener.close()
        throw error
    }
}

/// A Torus connection to a raw POSIX listener, and the raw end of it.
func connectToRawPeer(
    options: ConnectionOptions = .init(), peerReceiveBufferSize: CInt? = nil
) async throws -> (connection: Connection, peer: RawSocket) {
    let listener = try RawSocket.listening()
    defer { listener.close() }
    // Set on the listener, so the accepted socket has it from the handshake on.
    if let peerReceiveBufferSize { listener.setReceiveBufferSize(peerReceiveBufferSize) }
    let connection = try await Connection.connect(to: .ipv4(.loopback, port: listener.port), options: options)
    // The connect completed, so the connection waits in the accept queue: no blocking here.
    let peer = try listener.accept()
    return (connection, peer)
}

// MARK: - Files

/// Runs `body` with a fresh directory made by `mkdtemp`, removed (with its direct entries)
/// afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    var template = Array("/tmp/torus-tests-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw POSIXError("mkdtemp")
    }
    let directory = String(cString: made)
    defer { removeDirectory(directory) }
    return try await body(directory)
}

private func removeDirectory(_ path: String) {
    if let directory = opendir(path) {
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { unlink(path + "/" + name) }
        }
        closedir(directory)
    }
    rmdir(path)
}

// MARK: - Errors

/// Runs `body` and returns the `TorusError` it throws; records an issue (and returns nil) if it
/// throws something else or nothing.
func torusError<R>(
    _ body: () async throws -> R,
    sourceLocation: SourceLocation = #_sourceLocation
) async -> TorusError? {
    do {
        _ = try await body()
        Issue.record("expected a TorusError, but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as TorusError {
        return error
    } catch {
        Issue.record("expected a TorusError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Expects `body` to throw a `TorusError` of `kind`, and returns it.
@discardableResult
func expectTorusError<R>(
    _ kind: TorusError.Kind,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async -> TorusError? {
    guard let error = await torusError(body, sourceLocation: sourceLocation) else { return nil }
    #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
    return error
}
