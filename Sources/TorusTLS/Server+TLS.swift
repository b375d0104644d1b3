public import Torus

extension Server {
    /// Serves every connection over TLS: accepts as `run(_:)` does, runs the
    /// handshake in the connection's own child task (bounded by `handshakeTimeout`), and hands
    /// `handler` the TLS stream, isolated to it (on the connection's loop).
    ///
    /// ```swift
    /// let tls = try TLSContext(.server(certificateChain: .file("server.pem"), privateKey: .file("server.key")))
    /// try await server.run(tls: tls) { stream in
    ///     for try await line in stream.lines() { try await stream.send(line + "\n") }
    /// }
    /// ```
    ///
    /// A handshake that fails (an untrusted client certificate, a plaintext client, a
    /// timeout) ends that connection only; the server logs it and goes on. When the handler
    /// returns or throws, the stream sends close_notify and the connection closes.
    ///
    /// - Parameters:
    ///   - context: A server context (``TLSConfiguration/Role/server``).
    ///   - handshakeTimeout: How long a client has to complete the handshake.
    ///   - handler: Serves one TLS stream.
    public func run(
        tls context: TLSContext,
        handshakeTimeout: Duration = .seconds(10),
        _ handler: @escaping @Sendable (isolated TLSStream) async throws -> Void
    ) async throws {
        guard context.configuration.role == .server else {
            throw TLSError(.invalidConfiguration, step: .configuration, detail: "Server.run(tls:) needs a server context")
        }
        try await run { connection in
            let stream = try TLSStream(serverOn: connection, context: context)
            do {
                try await stream.handshake(timeout: handshakeTimeout)
                try await handler(stream)
            } catch {
                await stream.close()
                throw error
            }
            await stream.close()
        }
    }
}
