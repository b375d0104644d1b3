public import Torus

extension TLSStream {
    /// Connects to `host` and runs the TLS handshake, verifying that the server's certificate
    /// is for `host` (or `serverName`) and chains to the context's trust roots.
    ///
    /// ```swift
    /// let context = try TLSContext(.client(trustRoots: .certificates(.file("ca.pem"))))
    /// let stream = try await TLSStream.connect(host: "localhost", port: 8443, context: context)
    /// try await stream.send("hello\n")
    /// ```
    ///
    /// - Parameters:
    ///   - host: A name (resolved without blocking any loop) or an address.
    ///   - port: The server's port.
    ///   - context: A client context. It keeps the server's session, so the next connection to
    ///     the same host and port resumes it.
    ///   - serverName: The name to send (SNI) and verify, when it is not `host`.
    ///   - timeout: Bounds the connect, and then the handshake, each.
    ///   - options: Socket options for the connection.
    ///   - eventLoop: The loop the connection lives on; by default the next of the shared group.
    /// - Throws: `TorusError` from connecting, ``TLSError`` from the handshake, or
    ///   `CancellationError`. The connection is closed when the handshake fails.
    public static func connect(
        host: String,
        port: UInt16,
        context: TLSContext,
        serverName: String? = nil,
        timeout: Duration? = .seconds(10),
        options: ConnectionOptions = .init(),
        on eventLoop: EventLoop? = nil
    ) async throws -> TLSStream {
        let connection = try await Connection.connect(host: host, port: port, timeout: timeout, options: options, on: eventLoop)
        return try await handshake(on: connection, context: context, serverName: serverName ?? host, timeout: timeout)
    }

    /// Connects to `address` and runs the TLS handshake, as
    /// ``connect(host:port:context:serverName:timeout:options:on:)`` does. Without a
    /// `serverName`, the server's certificate must be for the address itself (an IP SAN).
    public static func connect(
        to address: SocketAddress,
        context: TLSContext,
        serverName: String? = nil,
        timeout: Duration? = .seconds(10),
        options: ConnectionOptions = .init(),
        on eventLoop: EventLoop? = nil
    ) async throws -> TLSStream {
        let connection = try await Connection.connect(to: address, timeout: timeout, options: options, on: eventLoop)
        return try await handshake(on: connection, context: context, serverName: serverName, timeout: timeout)
    }

    private static func handshake(on connection: Connection, context: TLSContext, serverName: String?, timeout: Duration?) async throws -> TLSStream {
        let stream: TLSStream
        do {
            stream = try TLSStream(clientOn: connection, context: context, serverName: serverName)
        } catch {
            await connection.close()
            throw error
        }
        do {
            try await stream.handshake(timeout: timeout)
            return stream
        } catch {
            await stream.close()
            throw error
        }
    }
}
