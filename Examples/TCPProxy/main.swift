// tcp-proxy: forwards TCP connections to an upstream server.
//
//   swift run -c release tcp-proxy --upstream HOST:PORT [--listen HOST:PORT] [--threads 1]
//                                  [--idle-timeout SECONDS] [--keep-alive SECONDS]
//   swift run -c release tcp-proxy --upstream HOST:PORT [--host 127.0.0.1] [--port 7002]
//
// For each accepted connection it connects to the upstream (on the same event loop) and
// copies both directions at once, from the receive buffer with no copy. When one side ends
// its stream, the proxy shuts down the write side toward the other (half-close), so
// request/response protocols that half-close work through it; when both have ended, or on
// a reset or error on either side, both connections are closed. On SIGTERM or SIGINT the
// client side drains like any server connection: its end of stream reaches the upstream as a
// half-close, and the relay ends once the upstream has answered and ended its stream too (or
// the 30 s grace period is over). With --idle-timeout, a client connection on which nothing
// moved either way for that long is closed, and its upstream connection with it (none by
// default): a stalled upstream cannot hold the proxy's descriptors for ever. --keep-alive
// probes quiet client connections and ends those whose peer no longer answers.
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

func main() async -> Int32 {
    await ExampleServer.run(name: "tcp-proxy") {
        let usage = "usage: tcp-proxy --upstream HOST:PORT [--listen HOST:PORT | --host ADDRESS --port PORT] [--threads N] \(ExampleServer.livenessUsage)"
        var options = try ExampleOptions(
            CommandLine.arguments.dropFirst(), accepting: ExampleServer.livenessOptionNames.union(["listen", "upstream", "host", "port", "threads"]), usage: usage)
        let configuration = try ExampleServer.livenessConfiguration(options)
        let connectionOptions = try ExampleServer.livenessConnectionOptions(options)
        guard options.string("upstream", default: "").isEmpty == false else { throw ExampleUsageError("--upstream is required\n\(usage)") }
        let upstream = try SocketAddress(options.string("upstream", default: ""))
        let listen = options.string("listen", default: "")
        if !listen.isEmpty {
            // --listen HOST:PORT is --host HOST --port PORT in one.
            let address = try SocketAddress(listen)
            guard let port = address.port, let colon = listen.lastIndex(of: ":") else { throw ExampleUsageError("--listen needs HOST:PORT\n\(usage)") }
            let host = String(listen[..<colon]).trimmingCharacters(in: "[]")
            options = try ExampleOptions(
                ["--host", host, "--port", String(port), "--threads", options.string("threads", default: "1")],
                accepting: ["host", "port", "threads"], usage: usage)
        }
        let listeners = try await ExampleServer.bind(name: "tcp-proxy", options: options, defaultPort: 7002, connectionOptions: connectionOptions)
        try await ExampleServer.serve(listeners, configuration: configuration) { connection in
            await ProxyRelay.serve(connection, upstream: upstream, idleTimeout: configuration.idleTimeout)
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(self.drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

exit(await main())
