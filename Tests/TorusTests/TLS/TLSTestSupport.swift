import Testing
import Torus
import TorusTLS

/// Runs `body` with a `Server` serving TLS on a loopback port with `handler`, then shuts the
/// server down and waits for it.
func withTLSServer<T: Sendable>(
    _ context: TLSContext,
    handshakeTimeout: Duration = .seconds(10),
    handler: @escaping @Sendable (isolated TLSStream) async throws -> Void = echoLines,
    _ body: (UInt16) async throws -> T
) async throws -> T {
    let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
    let server = Server(listener: listener)
    let serving = Task { try await server.run(tls: context, handshakeTimeout: handshakeTimeout, handler) }
    let port = listener.localAddress.port!
    do {
        let result = try await body(port)
        server.shutdown()
        try await serving.value
        return result
    } catch {
        server.shutdown()
        try? await serving.value
        throw error
    }
}

/// Echoes every line back, until the client's close_notify.
@Sendable func echoLines(_ stream: isolated TLSStream) async throws {
    for try await line in stream.lines() {
        try await stream.send(line + "\n")
    }
}

/// Echoes every byte back, until the client's close_notify.
@Sendable func echoBytes(_ stream: isolated TLSStream) async throws {
    while let bytes = try await stream.receive() {
        try await stream.send(bytes)
    }
}

/// Runs `body` and returns the `TLSError` it throws; records an issue (and returns nil) if it
/// throws something else or nothing.
@discardableResult
func expectTLSError<R>(
    _ kind: TLSError.Kind,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async -> TLSError? {
    do {
        _ = try await body()
        Issue.record("expected a TLSError (\(kind)), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as TLSError {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a TLSError (\(kind)), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension TLSStream {
    /// Reads until the peer's close_notify.
    func readToEnd() async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await receive() { bytes += chunk.array }
        return bytes
    }
}

/// What each side of one handshake ended with.
struct HandshakeOutcome {
    var server: (any Error)?
    var client: (any Error)?
    /// The client's stream, open if its handshake succeeded (the caller closes it).
    var clientStream: TLSStream
    var serverStream: TLSStream
}

/// Runs a server and a client handshake against each other over a fresh loopback connection.
func handshake(
    server serverContext: TLSContext,
    client clientContext: TLSContext,
    serverName: String? = "localhost",
    timeout: Duration = .seconds(5)
) async throws -> HandshakeOutcome {
    let (client, server) = try await connectedPair()
    let serverStream = try TLSStream(serverOn: server, context: serverContext)
    let clientStream = try TLSStream(clientOn: client, context: clientContext, serverName: serverName)
    async let serverResult: (any Error)? = { do { try await serverStream.handshake(timeout: timeout); return nil } catch { return error } }()
    let clientResult: (any Error)?
    do {
        try await clientStream.handshake(timeout: timeout)
        clientResult = nil
    } catch {
        clientResult = error
    }
    return HandshakeOutcome(server: await serverResult, client: clientResult, clientStream: clientStream, serverStream: serverStream)
}

/// `error` as a `TLSError` of `kind`, recording an issue if it is not one.
@discardableResult
func expectTLSError(_ error: (any Error)?, _ kind: TLSError.Kind, sourceLocation: SourceLocation = #_sourceLocation) -> TLSError? {
    guard let error else {
        Issue.record("expected a TLSError (\(kind)), but there was no error", sourceLocation: sourceLocation)
        return nil
    }
    guard let tlsError = error as? TLSError else {
        Issue.record("expected a TLSError (\(kind)), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
    #expect(tlsError.kind == kind, "\(tlsError)", sourceLocation: sourceLocation)
    return tlsError
}
