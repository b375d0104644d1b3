public import ExampleProtocols
public import Torus
import Logging
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// What every example server shares: `--host`, `--port`, `--threads` and `--listener` parsing,
/// the listeners, the `NAME listening on HOST:PORT` line scripts wait for, a graceful stop on
/// SIGTERM and SIGINT, and the exit code.
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
    ///   - connectionOptions: The options of every accepted connection.
    /// - Returns: The listeners, the first one's loop first.
    /// - Throws: ``ExampleUsageError`` for bad option values, ``TorusError`` when binding fails.
    public static func bind(
        name: String, options: ExampleOptions, defaultPort: UInt16, connectionOptions: ConnectionOptions = .init()
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
        var listenerOptions = Listener.Options()
        listenerOptions.connectionOptions = connectionOptions
        var listeners: [Listener] = []
        if placement == "shared" {
            listeners.append(try await Listener(bindingTo: address, options: listenerOptions, group: group))
        } else if threads > 1 {
            listeners = try await Listener.perLoop(bindingTo: address, options: listenerOptions, group: group)
        } else {
            listeners.append(try await Listener(bindingTo: address, options: listenerOptions, on: group.loops[0]))
        }
        print("\(name) listening on \(listeners[0].localAddress) with \(threads) event loop(s) on \(group.engine)")
        fflush(nil)  // Into a pipe, stdout is block-buffered: scripts wait for this line.
        return listeners
    }

    /// Runs `body` until it returns or a signal stops it, printing what went wrong when it
    /// throws; returns the process exit code: 0, 1 for a failure, 2 for a usage error.
    ///
    /// The first SIGTERM or SIGINT cancels `body`. For a ``Server`` (``serve(_:configuration:handle:)``)
    /// that is a graceful shutdown: the listeners close, every connection drains (its reads
    /// end, so idle ones end at once and busy handlers finish what they are writing), and
    /// handlers still running after the grace period are cancelled. Once `body` has
    /// returned, or thrown `CancellationError` (a loop ended by the cancellation), the exit
    /// code is 0. A second signal exits at once, with 128 + the signal's number, as the
    /// signal's default action would.
    public static func run(name: String, _ body: @escaping @Sendable () async throws -> Void) async -> Int32 {
        // Trapped before anything is served: from here on the signals no longer kill the
        // process, they arrive here.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let serving = Task { try await body() }
        let stopped = Atomic<Bool>(false)
        let watching = Task {
            for await signal in signals {
                guard !stopped.exchange(true, ordering: .relaxed) else {
                    var line = "\(name): \(signal) again, exiting now\n"
                    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
                    exit(128 + signal.rawValue)
                }
                // Quietly: scripts and tests read the output, and the exit status says it all.
                serving.cancel()
            }
        }
        defer { watching.cancel() }
        do {
            try await serving.value
            return 0
        } catch is CancellationError where stopped.load(ordering: .relaxed) {
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
    /// returns or throws (an error ends that connection only). Returns when the server has
    /// shut down: cancelling the task running this (as ``run(name:_:)`` does on SIGTERM or
    /// SIGINT) is a graceful shutdown, in which `handle`'s reads return end of stream once
    /// what already arrived is read.
    public static func serve(
        _ listeners: [Listener],
        configuration: Server.Configuration = .init(),
        handle: @escaping @Sendable (isolated Connection) async throws -> Void
    ) async throws {
        try await Server(listeners: listeners, configuration: configuration, logger: quietLogger).run { connection in
            try await handle(connection)
        }
    }

    /// Logs notices and worse only: the examples print their own lines.
    static let quietLogger: Logger = {
        var logger = Logger(label: "example-server")
        logger.logLevel = .notice
        return logger
    }()
}
