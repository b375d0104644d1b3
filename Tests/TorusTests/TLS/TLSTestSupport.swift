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
