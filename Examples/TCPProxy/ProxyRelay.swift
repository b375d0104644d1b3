import Torus
#if canImport(Glibc)
import Glibc
#endif

/// Writes one line to standard error (unbuffered), for failures worth seeing in a log.
func printToStandardError(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Relays one accepted connection to the upstream server: both directions copied at once,
/// end of stream passed on as a half-close, and any error (a reset, a failed write) closing
/// both sides.
enum ProxyRelay {
    /// Long enough for a few SYN retransmissions (1, 3, 7, 15 s) to an upstream whose accept
    /// queue overflowed under load; the chaos soak saw a 5 s timeout expire there and cut a
    /// client (about once in two million connections). Common proxies wait longer still.
    static let connectTimeout = Duration.seconds(30)

    /// Relays `client` to `upstream` until both directions end.
    ///
    /// `idleTimeout` (the server's, if it has one) also bounds each write to the upstream:
    /// the server's idle timeout closes the client connection, which ends a pump waiting on
    /// the client, but not one stuck writing to an upstream that stopped reading; that write
    /// then ends on its own timeout and closes both sides.
    static func serve(_ client: Connection, upstream: SocketAddress, idleTimeout: Duration?) async {
        let server: Connection
        do {
            // On the client's loop: both pumps then run there, and a write to the other side
            // is a call on the same executor, no thread hop.
            server = try await Connection.connect(
                to: upstream, timeout: connectTimeout, options: .init(writeTimeout: idleTimeout), on: client.eventLoop)
        } catch {
            printToStandardError("tcp-proxy: cannot reach \(upstream) for \(client.remoteAddress): \(error)")
            await client.close()
            return
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await pump(from: client, to: server) }
            group.addTask { await pump(from: server, to: client) }
        }
        await client.close()
        await server.close()
    }

    /// Copies `source` to `sink` until end of stream, then shuts down `sink`'s write side so
    /// its peer sees the end too. On an error closes both, which also ends the other pump.
    private static func pump(from source: Connection, to sink: Connection) async {
        await source.withIsolation { source in
            let reader = BufferedReader(source)
            do {
                while let bytes = try await reader.receive() {
                    // Straight from the receive buffer, no copy.
                    try await sink.write(bytes)
                }
                try await sink.shutdown(.write)
            } catch {
                await source.close()
                await sink.close()
            }
        }
    }
}
