// echo-server: sends back every byte it receives.
//
//   swift run echo-server [--host 127.0.0.1] [--port 7000] [--threads 1] [--listener per-loop|shared]
//                         [--idle-timeout SECONDS] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//
// With --threads N it runs N event loops. `--listener per-loop` (the default) gives each loop
// its own listener on the same port (SO_REUSEPORT), so the kernel spreads connections over the
// loops; `--listener shared` opens one listener that places connections on the loops in turn.
// A `Server` serves each connection in a child task, isolated to the connection on its loop,
// so reads and writes cost no thread hop. SIGTERM or SIGINT stops it gracefully (exit 0):
// open connections drain, so idle ones end at once. With --tls-cert and --tls-key it echoes
// over TLS (try `echo-client --tls --ca ca.pem`). With --idle-timeout a connection on which
// nothing moved either way for that long is closed (none by default: an echo client may wait).
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

/// Sends back every byte received, with no copy (on a TLS stream: decrypted, then encrypted
/// again), until the peer ends the stream (or the
/// server drains the connection at shutdown). Runs isolated to the connection, on its event
/// loop: each receive and send is a direct call, and the bytes go back out of the receive
/// buffer the kernel filled (the reader hands out each received chunk as it is), without a
/// copy and without waiting for each send. The server
/// closes the connection afterwards (which lets what is queued go out first), and a reset ends
/// this connection only.
func echo(_ connection: isolated some ByteStream) async throws {
    let reader = BufferedReader(connection)
    while let bytes = try await reader.receive() {
        try await connection.send(bytes)
    }
}

func main() async -> Int32 {
    await ExampleServer.run(name: "echo-server") {
        let options = try ExampleOptions(
            CommandLine.arguments.dropFirst(),
            accepting: ExampleServer.tlsOptionNames.union(["host", "port", "threads", "listener", "idle-timeout"]),
            usage: "usage: echo-server [--host ADDRESS] [--port PORT] [--threads N] [--listener per-loop|shared] [--idle-timeout SECONDS] \(ExampleServer.tlsUsage)")
        // No idle timeout unless asked for.
        let idleTimeout = options.string("idle-timeout") == nil ? nil : try options.seconds("idle-timeout", default: .zero)
        let configuration = Server.Configuration(idleTimeout: idleTimeout)
        let tls = try ExampleServer.tlsContext(options)
        let listeners = try await ExampleServer.bind(name: "echo-server", options: options, defaultPort: 7000)
        try await ExampleServer.serve(
            listeners, configuration: configuration, tls: tls, handle: { try await echo($0) }, handleTLS: { try await echo($0) })
    }
}

exit(await main())
