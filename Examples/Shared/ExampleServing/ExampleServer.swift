public import ExampleProtocols
public import Torus

#if canImport(Glibc)
import Glibc
#endif

/// What every example server shares: `--host`, `--port` and `--threads` parsing, one listener
/// per event loop on the same port (`SO_REUSEPORT` when there are several), the
/// `NAME listening on HOST:PORT` line scripts wait for, and the exit code.
public enum ExampleServer {
    /// Binds one listener per loop and prints the listening line.
    ///
    /// - Parameters:
    ///   - name: The program name that starts the listening line.
    ///   - options: Parsed options; `host`, `port` (default `defaultPort`) and `threads`
    ///     (default 1) are read from them.
    /// - Returns: The listeners, the first one's loop first.
    /// - Throws: ``ExampleUsageError`` for bad option values, ``TorusError`` when binding fails.
    public static func bind(
        name: String, options: ExampleOptions, defaultPort: UInt16
    ) async throws -> [Listener] {
        let host = options.string("host", default: "127.0.0.1")
        let port = try options.port("port", default: defaultPort)
        let threads = try options.integer("threads", default: 1)
        let group = try EventLoopGroup(loopCount: threads)
        let address = try SocketAddress(host: host, port: port)
        var listenerOptions = Listener.Options()
        listenerOptions.reusePort = threads > 1
        var listeners: [Listener] = []
        for loop in group.loops {
            // Port 0: the others bind the port the first one got.
            let bindTo = listeners.first.map { address.withPort($0.localAddress.port ?? port) } ?? address
            listeners.append(try await Listener(bindingTo: bindTo, options: listenerOptions, on: loop))
        }
        print("\(name) listening on \(listeners[0].localAddress) with \(threads) event loop(s)")
        fflush(nil)  // Into a pipe, stdout is block-buffered: scripts wait for this line.
        return listeners
    }

    /// Runs `body`, printing what went wrong when it throws; returns the process exit code
    /// (0, 1 for a failure, 2 for a usage error).
    public static func run(name: String, _ body: () async throws -> Void) async -> Int32 {
        do {
            try await body()
            return 0
        } catch let error as ExampleUsageError {
            print(error)
            return 2
        } catch {
            print("\(name): \(error)")
            return 1
        }
    }

    /// Accepts connections from every listener, calling `handle` for each in a child task of
    /// its own. Returns when every listener has closed.
    public static func serve(
        _ listeners: [Listener], handle: @escaping @Sendable (Connection) async -> Void
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for listener in listeners {
                group.addTask {
                    try await withThrowingDiscardingTaskGroup { connections in
                        for try await connection in listener {
                            connections.addTask { await handle(connection) }
                        }
                    }
                }
            }
        }
    }
}
