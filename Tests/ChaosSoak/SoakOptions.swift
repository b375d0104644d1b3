#if canImport(Glibc)
import Glibc
#endif

/// The command line of `chaos-soak`.
struct SoakOptions {
    /// Percentages of connections that end each way, and that read slowly or stall.
    struct Mix {
        var reset = 10
        var cancel = 10
        var halfClose = 30
        var slowReader = 5
        var stalledWriter = 10
    }

    /// Over TLS: percentages of connections that misbehave at the TLS level (see ``TLSPlan``)
    /// and that offer TLS 1.2 only. The rest are honest and negotiate TLS 1.3.
    struct TLSMix {
        var garbage = 3
        var cutHandshake = 5
        var stuckHandshake = 2
        var noCloseNotify = 5
        var renegotiate = 5
        var tls12 = 30

        var misbehaving: Int { garbage + cutHandshake + stuckHandshake + noCloseNotify + renegotiate }

        /// The same versions, no misbehaviour.
        var honestOnly: TLSMix {
            TLSMix(garbage: 0, cutHandshake: 0, stuckHandshake: 0, noCloseNotify: 0, renegotiate: 0, tls12: tls12)
        }
    }

    /// A server process whose health is checked: descriptors and RSS.
    struct Server {
        let name: String
        let pid: pid_t
    }

    var host = "127.0.0.1"
    var port: UInt16 = 0
    var label = "target"
    var servers: [Server] = []
    var duration = 60.0
    var connections = 1000
    var seed: UInt64 = 0
    var seedGiven = false
    var minSize = 1
    var maxSize = 64 * 1024
    var maxMessages = 8
    var mix = Mix()
    var slowReaderBytes = 256 * 1024
    var stallMilliseconds = 10...300
    var stallTimeout = 30.0
    var drainTimeout = 30.0
    var settleTimeout = 10.0
    var sampleEvery: Double?
    var warmUpFraction = 0.2
    var rssTolerancePercent = 10.0
    var rssToleranceFloorMiB = 16.0
    /// Speak TLS, trusting the certificate authority in this PEM file; nil: plaintext.
    var tlsCA: String?
    /// The name the server's certificate must be for (also sent as SNI).
    var tlsServerName = "localhost"
    var tlsMix = TLSMix()
    /// The server's handshake timeout: a handshake that never finishes (or plaintext garbage)
    /// must be closed by the server within it plus `tlsCloseSlack`.
    var tlsHandshakeTimeout = 10.0
    var tlsCloseSlack = 5.0

    static let usage = """
        usage: chaos-soak --connect 127.0.0.1:PORT [--server NAME=PID ...] [options]

          --connect HOST:PORT     the server to stress (IPv4 loopback, or 10.203.0.x: the test hosts)
          --server NAME=PID       a server process to watch (descriptors, RSS); repeatable
          --label NAME            what to call the target in the report (default: target)
          --duration S            seconds of load, then a drain (default 60)
          --connections N         connections kept open (default 1000)
          --seed N                seed of every random choice (default: from the clock; printed)
          --min-size B, --max-size B   message sizes, log-uniform (default 1, 65536)
          --max-messages N        messages per connection, 1...N (default 8)
          --reset P, --cancel P, --half-close P   % of connections ending so (default 10, 10, 30;
                                  the rest wait for every byte and close)
          --slow-reader P, --stalled-writer P     % reading slowly / pausing writes (default 5, 10)
          --stall-timeout S       no progress for S seconds fails a connection (default 30)
          --drain-timeout S       time for connections to finish after the load (default 30)
          --settle-timeout S      time for server descriptors to return to baseline (default 10)
          --sample-every S        RSS sampling period (default duration/30, 2...10 s)
          --rss-tolerance P       allowed RSS growth after warm-up, % (default 10; see MemoryTrend)
          --rss-floor MIB         ... but at least this many MiB (default 16)
          --tls-ca FILE           speak TLS, trusting this CA (PEM); the certificate must be for
                                  --tls-server-name (default localhost)
          --garbage P, --cut-handshake P, --stuck-handshake P, --no-close-notify P, --renegotiate P
                                  over TLS: % sending plaintext garbage, cutting the handshake,
                                  never finishing it, closing without close_notify, asking to
                                  renegotiate (TLS 1.2) (default 3, 5, 2, 5, 5)
          --tls12 P               % of the other connections offering TLS 1.2 only (default 30)
          --tls-handshake-timeout S   the server's handshake timeout (default 10): a stuck
                                  handshake must be closed within it plus --tls-close-slack (5)
        """

    init(_ arguments: [String]) throws(UsageError) {
        var remaining = arguments.makeIterator()
        var connectGiven = false
        while let flag = remaining.next() {
            if flag == "--help" || flag == "-h" { throw UsageError(Self.usage) }
            guard let value = remaining.next() else { throw UsageError("\(flag) needs a value\n\(Self.usage)") }
            switch flag {
            case "--connect":
                guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]), port > 0 else {
                    throw UsageError("--connect needs HOST:PORT, not \(value)")
                }
                host = String(value[..<colon])
                var address = in_addr()
                // Loopback, or the project's own test hosts (scripts/netns-hosts.sh: 10.203.0.0/24,
                // namespaces on this machine): never anything else.
                let value = inet_pton(AF_INET, host, &address) == 1 ? UInt32(bigEndian: address.s_addr) : 0
                guard value >> 24 == 127 || value >> 8 == 0x0A_CB_00 else {
                    throw UsageError("--connect: \(host) is neither an IPv4 loopback address (127.0.0.0/8) nor a test host of scripts/netns-hosts.sh (10.203.0.0/24); this tool stays on this machine")
                }
                self.port = port
                connectGiven = true
            case "--server":
                guard let equals = value.firstIndex(of: "="), let pid = pid_t(value[value.index(after: equals)...]), pid > 0 else {
                    throw UsageError("--server needs NAME=PID, not \(value)")
                }
                servers.append(Server(name: String(value[..<equals]), pid: pid))
            case "--label": label = value
            case "--duration": duration = try Self.positive(flag, value)
            case "--connections": connections = Int(try Self.positive(flag, value))
            case "--seed":
                guard let seed = UInt64(value) else { throw UsageError("--seed must be a number 0...2^64-1, not \(value)") }
                self.seed = seed
                seedGiven = true
            case "--min-size": minSize = Int(try Self.positive(flag, value))
            case "--max-size": maxSize = Int(try Self.positive(flag, value))
            case "--max-messages": maxMessages = Int(try Self.positive(flag, value))
            case "--reset": mix.reset = try Self.percent(flag, value)
            case "--cancel": mix.cancel = try Self.percent(flag, value)
            case "--half-close": mix.halfClose = try Self.percent(flag, value)
            case "--slow-reader": mix.slowReader = try Self.percent(flag, value)
            case "--stalled-writer": mix.stalledWriter = try Self.percent(flag, value)
            case "--stall-timeout": stallTimeout = try Self.positive(flag, value)
            case "--drain-timeout": drainTimeout = try Self.positive(flag, value)
            case "--settle-timeout": settleTimeout = try Self.positive(flag, value)
            case "--sample-every": sampleEvery = try Self.positive(flag, value)
            case "--rss-tolerance": rssTolerancePercent = try Self.positive(flag, value)
            case "--rss-floor": rssToleranceFloorMiB = try Self.positive(flag, value)
            case "--tls-ca": tlsCA = value
            case "--tls-server-name": tlsServerName = value
            case "--garbage": tlsMix.garbage = try Self.percent(flag, value)
            case "--cut-handshake": tlsMix.cutHandshake = try Self.percent(flag, value)
            case "--stuck-handshake": tlsMix.stuckHandshake = try Self.percent(flag, value)
            case "--no-close-notify": tlsMix.noCloseNotify = try Self.percent(flag, value)
            case "--renegotiate": tlsMix.renegotiate = try Self.percent(flag, value)
            case "--tls12": tlsMix.tls12 = try Self.percent(flag, value)
            case "--tls-handshake-timeout": tlsHandshakeTimeout = try Self.positive(flag, value)
            case "--tls-close-slack": tlsCloseSlack = try Self.positive(flag, value)
            default: throw UsageError("unknown option \(flag)\n\(Self.usage)")
            }
        }
        guard connectGiven else { throw UsageError("--connect is required\n\(Self.usage)") }
        guard minSize <= maxSize else { throw UsageError("--min-size must not exceed --max-size") }
        guard mix.reset + mix.cancel + mix.halfClose <= 100 else {
            throw UsageError("--reset + --cancel + --half-close must not exceed 100")
        }
        guard tlsMix.misbehaving <= 100 else { throw UsageError("the TLS misbehaviour percentages must not exceed 100 together") }
        if !seedGiven {
            seed = SplitMix64.mix(UInt64(bitPattern: Clock.now()) ^ UInt64(UInt32(bitPattern: getpid())))
        }
    }

    /// The RSS sampling period: about 30 samples per run, 2 to 10 s apart.
    var samplePeriod: Double { sampleEvery ?? min(max(duration / 30, 2), 10) }

    private static func positive(_ flag: String, _ value: String) throws(UsageError) -> Double {
        guard let number = Double(value), number > 0, number.isFinite else { throw UsageError("\(flag) must be a positive number, not \(value)") }
        return number
    }

    private static func percent(_ flag: String, _ value: String) throws(UsageError) -> Int {
        guard let number = Int(value), (0...100).contains(number) else { throw UsageError("\(flag) must be a percentage 0...100, not \(value)") }
        return number
    }
}
