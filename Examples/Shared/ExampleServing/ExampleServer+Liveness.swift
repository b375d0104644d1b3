public import ExampleProtocols
public import Torus

/// `--idle-timeout` and `--keep-alive`: how a server notices connections whose peer is gone.
///
/// On a real network a peer can vanish without a word: its reset lost on the way, its host
/// switched off, a firewall dropping its packets. The server's socket then looks open for
/// ever. TCP keep-alive probes such a connection once it has been quiet for a while and ends
/// it when nothing answers; an idle timeout closes connections on which nothing has moved for
/// as long, whether or not the peer is alive.
extension ExampleServer {
    /// The option names ``livenessConfiguration(_:)`` and ``livenessConnectionOptions(_:)`` read.
    public static let livenessOptionNames: Set<String> = ["idle-timeout", "keep-alive"]

    /// The usage text of the liveness options.
    public static let livenessUsage = "[--idle-timeout SECONDS] [--keep-alive SECONDS]"

    /// The server configuration `--idle-timeout SECONDS` asks for (none by default).
    public static func livenessConfiguration(_ options: ExampleOptions) throws(ExampleUsageError) -> Server.Configuration {
        guard options.string("idle-timeout") != nil else { return .init() }
        return .init(idleTimeout: try options.seconds("idle-timeout", default: .zero))
    }

    /// The options of accepted connections: with `--keep-alive SECONDS`, probes after that
    /// many quiet seconds, then every third of that (at least 1 s), five unanswered probes
    /// ending the connection (fewer would let a lossy link end a live one: at 5% loss each
    /// way, three probes in a row go unanswered once in a thousand); off by default.
    public static func livenessConnectionOptions(_ options: ExampleOptions) throws(ExampleUsageError) -> ConnectionOptions {
        guard options.string("keep-alive") != nil else { return .init() }
        let idle = try options.seconds("keep-alive", default: .zero)
        guard idle >= .seconds(1) else {
            throw ExampleUsageError("--keep-alive must be at least 1 second: the kernel counts whole seconds")
        }
        return .init(keepAlive: .init(idle: idle, interval: max(.seconds(1), idle / 3), count: 5))
    }
}
