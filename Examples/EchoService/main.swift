import Logging
import ServiceLifecycle
import Torus
import TorusServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// An echo server embedded the way a production service embeds Torus: a `ServiceGroup` runs
/// it beside other services and shuts it down gracefully on SIGTERM or SIGINT, letting open
/// connections finish within a grace period. Exits 0 after a graceful shutdown.
///
///     echo-service [--port 7000] [--host 127.0.0.1] [--grace-seconds 10] [--idle-seconds 60]
@main
struct EchoService {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        func value(_ name: String, default fallback: String) -> String {
            guard let index = arguments.firstIndex(of: "--\(name)"), arguments.index(after: index) < arguments.endIndex else {
                return fallback
            }
            return arguments[arguments.index(after: index)]
        }
        guard let port = UInt16(value("port", default: "7000")),
              let grace = Int(value("grace-seconds", default: "10")),
              let idle = Int(value("idle-seconds", default: "60"))
        else {
            print("usage: echo-service [--port N] [--host ADDRESS] [--grace-seconds N] [--idle-seconds N]")
            exit(2)
        }
        let logger = Logger(label: "echo-service")

        let listener = try await Listener(bindingTo: SocketAddress(host: value("host", default: "127.0.0.1"), port: port))
        let configuration = Server.Configuration(idleTimeout: .seconds(idle), shutdownGracePeriod: .seconds(grace))
        let echo = TorusService(Server(listener: listener, configuration: configuration, logger: logger)) { connection in
            while let bytes = try await connection.receive() {
                try await connection.send(bytes)
            }
        }
        let group = ServiceGroup(services: [echo], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)

        print("echo-service listening on \(listener.localAddress)")
        fflush(nil)  // Into a pipe, stdout is block-buffered: scripts wait for this line.
        try await group.run()
        print("echo-service stopped")
    }
}
