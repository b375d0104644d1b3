public import ServiceLifecycle
public import Torus

/// A `Service` that runs a Torus ``Torus/Server`` in a `ServiceGroup` and shuts it down
/// gracefully when the group does (on SIGTERM or SIGINT, say).
///
/// ```swift
/// let listener = try await Listener(bindingTo: .ipv4(.any, port: 7000))
/// let service = TorusService(Server(listener: listener)) { connection in
///     while let bytes = try await connection.receive() {
///         try await connection.send(bytes)
///     }
/// }
/// let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
///
/// On the group's graceful shutdown the server stops accepting, its connections drain (a
/// handler's reads return end of stream once the bytes already received are handed out, so an
/// idle connection ends at once; writes go on; see ``Torus/Connection/isDraining``), and
/// running handlers get its ``Torus/Server/Configuration/shutdownGracePeriod`` to finish before
/// they are cancelled; if the group cancels the service instead, the same graceful shutdown
/// begins.
public struct TorusService: Service {
    /// The server this service runs.
    public let server: Server
    private let handler: @Sendable (isolated Connection) async throws -> Void

    /// Creates a service that runs `server`, serving each connection with `handler` (see
    /// ``Torus/Server/run(_:)``).
    public init(_ server: Server, handler: @escaping @Sendable (isolated Connection) async throws -> Void) {
        self.server = server
        self.handler = handler
    }

    /// Runs the server until the service group shuts down gracefully or cancels it; returns
    /// once every handler has ended.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run(handler)
        } onGracefulShutdown: {
            server.shutdown()
        }
    }
}
