// http-hello: an HTTP/1.1 server that answers `GET /` with `Hello, World!`.
//
//   swift run -c release http-hello [--host 127.0.0.1] [--port 8080] [--threads 1] [--listener per-loop|shared] [--idle-timeout 60]
//                                   [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] [--tls-sni NAME=CERT:KEY,...]]
//
// With --tls-cert and --tls-key it serves HTTPS (TLS 1.2 and 1.3, ALPN http/1.1): the same
// handler, over a TorusTLS stream instead of the connection.
// Keep-alive and pipelining (the answers to every request that arrived together go out in
// one write, in order), Content-Length and chunked request bodies (framed and skipped),
// `Connection: close` and HTTP/1.0's default close. Unknown paths get 404; a malformed
// request gets 400, headers over 16 KiB get 431, and the connection is closed after either.
// A connection whose next request head is not complete --idle-timeout seconds after the
// last answer is closed. The decoder is `HTTPRequestDecoder` (ExampleProtocols), read
// through a Torus `BufferedReader`.
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

func main() async -> Int32 {
    await ExampleServer.run(name: "http-hello") {
        let options = try ExampleOptions(
            CommandLine.arguments.dropFirst(),
            accepting: ExampleServer.tlsOptionNames.union(["host", "port", "threads", "listener", "idle-timeout"]),
            usage: "usage: http-hello [--host ADDRESS] [--port PORT] [--threads N] [--listener per-loop|shared] [--idle-timeout SECONDS] \(ExampleServer.tlsUsage)")
        let idleTimeout = try options.seconds("idle-timeout", default: .seconds(60))
        let tls = try ExampleServer.tlsContext(options, applicationProtocols: ["http/1.1"])
        let listeners = try await ExampleServer.bind(name: "http-hello", options: options, defaultPort: 8080)
        try await ExampleServer.serve(listeners, tls: tls) { connection in
            await HTTPHelloHandler.serve(connection, idleTimeout: idleTimeout)
        } handleTLS: { stream in
            await HTTPHelloHandler.serve(stream, idleTimeout: idleTimeout)
        }
    }
}

exit(await main())
