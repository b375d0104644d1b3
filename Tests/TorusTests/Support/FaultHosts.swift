import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

/// The test hosts of `scripts/netns-hosts.sh`: this test process in the client namespace,
/// peers in the server namespace across a veth link, faults injected there with nftables.
/// `scripts/test-faults.sh` makes the hosts and runs the fault tests inside them; elsewhere
/// those tests are skipped, and say why.
enum FaultHosts {
    static let serverNamespace = "torus-server"
    static let server = IPv4Address(10, 203, 0, 2)
    static let client = IPv4Address(10, 203, 0, 1)
    static let serverV6 = IPv6Address("fd00:203::2")!

    /// Why the fault tests cannot run here; nil when they can.
    static let unavailableReason: String? = {
        guard let flag = getenv("TORUS_FAULT_HOSTS"), String(cString: flag) == "1" else {
            return "not inside the test hosts' client namespace: run scripts/test-faults.sh (as root) to run the fault tests"
        }
        return nil
    }()

    /// A program in the server namespace; its standard error joins its standard output.
    static func inServer(_ command: String) throws -> ChildProcess {
        try ChildProcess("/usr/sbin/ip", ["netns", "exec", serverNamespace, "/bin/sh", "-c", "exec " + command + " 2>&1"])
    }

    /// An echo server in the server namespace (socat), once it listens on `port`.
    static func startEchoServer(port: UInt16, options: String = "") async throws -> ChildProcess {
        // -T 10: a forked child whose client vanished behind a black hole (no FIN, no reset
        // ever arrives) exits after 10 s idle instead of outliving the test.
        try await startPeer(port: port, "socat -d -d -T 10 TCP4-LISTEN:\(port),reuseaddr,fork\(options) PIPE")
    }

    /// A server in the server namespace that accepts on `port` and never reads.
    static func startSilentServer(port: UInt16) async throws -> ChildProcess {
        try await startPeer(port: port, "socat -d -d -T 10 TCP4-LISTEN:\(port),reuseaddr,rcvbuf=4096 SYSTEM:'sleep 30'")
    }

    /// A program in the server namespace, once it prints "listening on".
    static func startPeer(port: UInt16, _ command: String) async throws -> ChildProcess {
        let peer = try inServer(command)
        let listening = await onPOSIXThread { peer.read(until: { $0.contains("listening on") }, timeout: .seconds(10)) }
        guard listening else { throw TestFailure("the peer did not start: \(command): \(peer.outputText)") }
        return peer
    }

    /// Replaces the fault rules of the server namespace with `chains` (nftables chain bodies
    /// of the table `inet torus_faults`), or removes them for nil; `clientChains` likewise in
    /// this process's (the client's) namespace.
    ///
    /// Loss belongs in the receiver's input hook: a packet dropped in the sender's own output
    /// hook fails the send (`EPERM`), which no real link does.
    static func inject(_ chains: String?, clientChains: String? = nil) async throws {
        for (rules, inServer) in [(chains, true), (clientChains, false)] {
            _ = try await run("nft delete table inet torus_faults 2>/dev/null; true", inServer: inServer)
            guard let rules else { continue }
            let ruleset = "table inet torus_faults {\n\(rules)\n}\n"
            let status = try await run("printf '%s' '\(ruleset)' | nft -f -", inServer: inServer)
            guard status == .exited(0) else { throw TestFailure("nft refused the rules: \(ruleset)") }
        }
    }

    /// Every packet from the client dropped as it reaches the server; with
    /// ``blackHoleFromServer`` on the client, every packet between the hosts: the server went
    /// silent.
    static let blackHole = "chain input { type filter hook input priority 0; policy accept; ip saddr \(client) drop; }"

    /// Every packet from the server dropped as it reaches the client.
    static let blackHoleFromServer = "chain input { type filter hook input priority 0; policy accept; ip saddr \(server) drop; }"

    /// `percent`% of the UDP datagrams to `port` dropped at random as they reach the server
    /// (``udpLoss(port:percent:)`` on the server, ``udpReplyLoss(port:percent:)`` on the
    /// client, for both ways).
    static func udpLoss(port: UInt16, percent: Int) -> String {
        "chain input { type filter hook input priority 0; policy accept; udp dport \(port) numgen random mod 100 < \(percent) drop; }"
    }

    /// `percent`% of the UDP datagrams from `port` dropped at random as they reach the client.
    static func udpReplyLoss(port: UInt16, percent: Int) -> String {
        "chain input { type filter hook input priority 0; policy accept; udp sport \(port) numgen random mod 100 < \(percent) drop; }"
    }

    /// The client's TCP packets to `port` answered with a reset.
    static func resets(port: UInt16) -> String {
        "chain input { type filter hook input priority 0; policy accept; tcp dport \(port) reject with tcp reset; }"
    }

    private static func run(_ command: String, inServer: Bool) async throws -> ChildProcess.Termination? {
        let child = try inServer ? Self.inServer(command) : ChildProcess("/bin/sh", ["-c", "exec " + command + " 2>&1"])
        return await onPOSIXThread { child.finish(timeout: .seconds(10)) }
    }
}
