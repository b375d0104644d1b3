public import ExampleProtocols
public import Torus
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What every example server shares: `--host`, `--port`, `--threads` and `--listener` parsing,
/// the listeners, the `NAME listening on HOST:PORT` line scripts wait for, and the exit code.
///
/// With several threads (event loops), `--listener per-loop` (the default) binds one listener
/// per loop on the same port (`SO_REUSEPORT`: the kernel spreads connections over the
/// sockets); `--listener shared` binds one listener that places its connections on the loops
/// in turn.
public enum ExampleServer {
    /// Binds the listeners and prints the listening line.
    ///
    /// - Parameters:
    ///   - name: The program name that starts the listening line.
    ///   - options: Parsed options; `host`, `port` (default `defaultPort`), `threads`
    ///     (default 1) and `listener` (`per-loop` or `shared`) are read from them.
    /// - Returns: The listeners, the first one's loop first.
    /// - Throws: ``ExampleUsageError`` for bad option values, ``TorusError`` when binding fails.
    public static func bind(
        name: String, options: ExampleOptions, defaultPort: UInt16
    ) async throws -> [Listener] {
        let host = options.string("host", default: "127.0.0.1")
        let port = try options.port("port", default: defaultPort)
        let threads = try options.integer("threads", default: 1)
        let placement = options.string("listener", default: "per-loop")
        guard placement == "per-loop" || placement == "shared" else {
            throw ExampleUsageError("--listener must be per-loop or shared, not \(placement)")
        }
        let group = try EventLoopGroup(loopCount: threads)
        let address = try SocketAddress(host: host, port: port)
        var listeners: [Listener] = []
        if placement == "shared" {
            listeners.append(try await Listener(bindingTo: address, group: group))
        } else if threads > 1 {
            listeners = try await Listener.perLoop(bindingTo: address, group: group)
        } else {
            listeners.append(try await Listener(bindingTo: address, on: group.loops[0]))
        }
        print("\(name) listening on \(listeners[0].localAddress) with \(threads) event loop(s) on \(group.engine)")
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

    /// Serves the connections of every listener with one ``Server``, calling `handle` for each
    /// connection in a child task of its own; the server closes the connection after `handle`
    /// returns. Returns when every listener has closed.
    public static func serve(
        _ listeners: [Listener],
        configuration: Server.Configuration = .init(),
        handle: @escaping @Sendable (isolated Connection) async -> Void
    ) async throws {
        try await Server(listeners: listeners, configuration: configuration, logger: quietLogger).run { connection in
            await handle(connection)
        }
    }

    /// Logs notices and worse only: the examples print their own lines.
    private static let quietLogger: Logger = {
        var logger = Logger(label: "example-server")
        logger.logLevel = .notice
        return logger
    }()
}
