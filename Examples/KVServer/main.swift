// kv-server: a Redis-compatible (RESP2) key-value server, enough for redis-cli and
// redis-benchmark.
//
//   swift run -c release kv-server [--host 127.0.0.1] [--port 6379] [--threads 1] [--max-bulk BYTES]
//                                  [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] [--tls-sni NAME=CERT:KEY,...]]
//
// PING, ECHO, SET (EX, PX, NX, XX, KEEPTTL), GET, DEL, EXISTS, INCR/DECR/INCRBY/DECRBY, MGET,
// MSET, EXPIRE/PEXPIRE, PERSIST, TTL/PTTL, DBSIZE, FLUSHDB/FLUSHALL, SELECT 0, COMMAND
// (COUNT, DOCS), CONFIG GET, CLIENT, QUIT; inline commands (`nc`) too. Pipelined commands
// are answered together in one write. Protocol errors are answered with -ERR; when the
// stream cannot be resynchronised (a broken array frame) the connection is closed after the
// answer. Bulk strings longer than --max-bulk (512 MiB by default) are refused that way.
// The data lives in one actor on the first event loop (see KVStore). With --tls-cert and
// --tls-key it speaks RESP over TLS, as `redis-cli --tls` does.
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

func main() async -> Int32 {
    await ExampleServer.run(name: "kv-server") {
        let options = try ExampleOptions(
            CommandLine.arguments.dropFirst(),
            accepting: ExampleServer.tlsOptionNames.union(["host", "port", "threads", "max-bulk"]),
            usage: "usage: kv-server [--host ADDRESS] [--port PORT] [--threads N] [--max-bulk BYTES] \(ExampleServer.tlsUsage)")
        let maxBulkLength = try options.integer("max-bulk", default: 512 * 1024 * 1024)
        let tls = try ExampleServer.tlsContext(options)
        let listeners = try await ExampleServer.bind(name: "kv-server", options: options, defaultPort: 6379)
        let store = KVStore(on: listeners[0].eventLoop)
        try await ExampleServer.serve(listeners, tls: tls) { connection in
            await KVConnectionHandler.serve(connection, store: store, maxBulkLength: maxBulkLength)
        } handleTLS: { stream in
            await KVConnectionHandler.serve(stream, store: store, maxBulkLength: maxBulkLength)
        }
    }
}

exit(await main())
