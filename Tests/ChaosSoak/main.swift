// chaos-soak: stresses an echo server (or a proxy in front of one) over loopback with many
// misbehaving clients, checks that every byte comes back, and that the server process keeps
// its descriptors and memory flat.
//
//   chaos-soak --connect 127.0.0.1:PORT --server NAME=PID [--server NAME=PID] [--duration 60]
//              [--connections 1000] [--seed N] [--label echo]
//
// scripts/chaos-soak.sh builds the example servers and this tool, starts the servers and runs
// it against them. For `--duration` seconds it keeps `--connections` client connections open,
// each replaced when it ends. Each connection follows a plan drawn from the seed and its serial
// number: 1 to 8 messages of 1 B to 64 KiB (log-uniform), pipelined or ping-pong, and an ending:
// close once everything came back, half-close and read to end of stream, reset (SO_LINGER 0,
// then close) or abandon (plain close, as when a task is cancelled) part way through a write or
// a read; some read in small chunks with pauses, some pause part way through a message. The
// bytes are a pseudo-random stream per connection (counter mode, so any offset can be
// recomputed), checked on arrival without being stored. When the time is up, every connection
// still open finishes its message, half-closes and must get every byte back and then end of
// stream. Then, with every client socket closed, each watched server's descriptor count must
// return to its value before the run, and its RSS, sampled throughout, must be flat after the
// warm-up (see MemoryTrend), and one more well-behaved connection must still be served. Exit
// status 0 only when every check passes; 1 otherwise; 2 for a bad command line.
//
// With --tls-ca FILE every connection speaks TLS, through OpenSSL itself (TLSClient,
// TLSSession: memory BIOs, so the socket I/O stays this loop's own non-blocking recv/send),
// verifying the server's certificate against that CA and the name localhost. TLS 1.2-only and
// TLS 1.3 connections mix. Honest ones run a full handshake, the plan above, and close_notify
// where they close or half-close (resets and cancels go without, as before); on top of them
// some misbehave at the TLS level (TLSPlan): plaintext garbage instead of a ClientHello, a
// handshake cut at a random byte of a client flight and then closed or reset, a handshake
// that stops and waits (which the server's handshake timeout must close, within
// --tls-handshake-timeout plus --tls-close-slack seconds), a close without close_notify after
// everything came back, and (TLS 1.2) a renegotiation request after the first message, which
// the server refuses: the connection may end or carry on.
//
// Why plain POSIX sockets and not Torus's own Connection as the client. The tool checks Torus,
// so it must not share Torus's code paths: a bug on both sides (say, bytes dropped by the
// receive path of both) could cancel out, which is why the test suite already checks Torus
// against an independent POSIX peer. And the chaos needs control Torus does not offer: a
// reset needs SO_LINGER 0 on the socket, which Connection neither exposes as an option nor
// gives access to the descriptor for; a "cancelled task" is, as the server sees it, a close at
// an arbitrary point with or without unread bytes, which is exactly what the plain close here
// produces. One thread with poll() (the Glibc module has no epoll) drives all the sockets:
// poll costs O(connections) per call, but under load each call returns many ready sockets, and
// the client is not what is measured. No Foundation: Glibc only.
#if canImport(Glibc)
import Glibc
#endif

func main() -> Int32 {
    let options: SoakOptions
    do {
        options = try SoakOptions(Array(CommandLine.arguments.dropFirst()))
    } catch {
        print(error)
        return 2
    }
    let mix = options.mix
    print("""
        chaos-soak: \(options.label) at \(options.host):\(options.port), \(options.connections) connections for \(Report.seconds(options.duration)), \
        seed \(options.seed) (replay the same plans with --seed \(options.seed))
          messages 1...\(options.maxMessages) of \(options.minSize)...\(options.maxSize) B; endings: reset \(mix.reset)%, cancel \(mix.cancel)%, \
        half-close \(mix.halfClose)%, close \(100 - mix.reset - mix.cancel - mix.halfClose)%; slow readers \(mix.slowReader)%, \
        stalled writers \(mix.stalledWriter)%\(tlsDescription(options))
          watching: \(options.servers.isEmpty ? "no server process" : options.servers.map { "\($0.name) (pid \($0.pid))" }.joined(separator: ", "))
        """)
    fflush(nil)

    let runner: SoakRunner
    do {
        runner = try SoakRunner(options: options)
    } catch {
        print(error)
        return 2
    }
    runner.run()
    let statistics = runner.statistics

    // Server health once every client socket is closed.
    var checks: [(passed: Bool, text: String)] = []
    var serverReports: [String] = []
    for (index, probe) in runner.probeList.enumerated() {
        var lines = ["server \(probe.name) (pid \(probe.pid)):"]
        let alive = probe.isAlive()
        checks.append((alive, "\(probe.name) is still running"))
        if let before = runner.baselineDescriptors[index] {
            let (after, waited) = probe.waitForDescriptorCount(before, timeout: options.settleTimeout)
            let afterText = after.map(String.init) ?? "gone"
            lines.append("  descriptors: \(before) before the run, \(afterText) after it (\(after == before ? "back to baseline in" : "gave up after") \(Report.fixed(waited, 2)) s)")
            checks.append((after == before, "\(probe.name) descriptors back to \(before) after the clients closed (now \(afterText))"))
        } else {
            checks.append((false, "\(probe.name) descriptors could be read before the run"))
        }
        let series = runner.samples[index]
        lines.append("  RSS (MiB) every \(Report.seconds(options.samplePeriod)), load to \(Report.seconds(runner.loadSeconds)) then drain:")
        var row = "   "
        for (position, sample) in series.enumerated() {
            row += " \(Report.pad(Report.seconds(sample.seconds), 6)) \(Report.pad(sample.residentBytes.map { Report.fixed(Double($0) / 1_048_576, 1) } ?? "-", 6))"
            if position % 6 == 5 || position == series.count - 1 {
                lines.append(row)
                row = "   "
            }
        }
        if let trend = MemoryTrend(samples: series, loadSeconds: runner.loadSeconds, warmUpFraction: options.warmUpFraction,
                                   tolerancePercent: options.rssTolerancePercent, floorMiB: options.rssToleranceFloorMiB) {
            let servedAfterWarmUp = max(statistics.connectionsEnded - runner.endedAfterWarmUp, 1)
            lines.append("  RSS median after warm-up (\(Report.seconds(trend.referenceWindow.lowerBound))-\(Report.seconds(trend.referenceWindow.upperBound))) "
                + "\(Report.mebibytes(trend.reference)), in the last 20% (\(Report.seconds(trend.endWindow.lowerBound))-\(Report.seconds(trend.endWindow.upperBound))) "
                + "\(Report.mebibytes(trend.end)): growth \(trend.growth >= 0 ? "+" : "")\(Report.fixed(Double(trend.growth) / 1_048_576, 2)) MiB, "
                + "allowed \(Report.mebibytes(trend.allowed)) (max of \(Report.fixed(options.rssTolerancePercent, 0))% and \(Report.fixed(options.rssToleranceFloorMiB, 0)) MiB)")
            lines.append("  RSS trend after warm-up: \(Report.fixed(trend.slopeBytesPerSecond / 1024, 1)) KiB/s; "
                + "growth per connection served after warm-up: \(Report.fixed(Double(trend.growth) / Double(servedAfterWarmUp), 1)) B over \(servedAfterWarmUp) connections")
            checks.append((trend.isFlat, "\(probe.name) RSS flat after warm-up (growth \(Report.fixed(Double(trend.growth) / 1_048_576, 2)) MiB <= \(Report.mebibytes(trend.allowed)))"))
        } else {
            lines.append("  RSS flatness not judged: the run is too short for \(MemoryTrend.minimumSamples) samples both right after warm-up (20-40%) and in the last 20%")
        }
        serverReports.append(lines.joined(separator: "\n"))
    }

    let failedConnections = statistics.failureCount
    checks.insert((statistics.bytesCorrupted == 0, "no corrupted bytes (\(statistics.bytesCorrupted))"), at: 0)
    checks.insert((statistics.bytesLost == 0, "no lost bytes: every byte sent on a connection the client did not give up came back (lost \(statistics.bytesLost))"), at: 1)
    checks.insert((failedConnections == 0, "no failed connections (\(failedConnections))"), at: 2)
    checks.insert((statistics.bytesVerified > 0 && statistics.connectionsEnded > 0, "the run moved bytes"), at: 3)
    if let death = runner.serverDeath { checks.append((false, "no server died during the run: \(death)")) }
    if runner.serverDeath == nil {
        let problem = runner.checkStillServing(timeout: 10)
        checks.append((problem == nil, "still accepting and serving after the run: one more \(options.tlsCA == nil ? "" : "TLS ")connection echoed in full\(problem.map { ": \($0)" } ?? "")"))
    }

    print("")
    print("=== chaos-soak summary: \(options.label) at \(options.host):\(options.port), seed \(options.seed) ===")
    print("load \(Report.seconds(runner.loadSeconds)), drain \(Report.seconds(runner.drainSeconds)); connections: \(statistics.connectionsStarted) started, "
        + "\(statistics.connectionsEnded) ended, up to \(options.connections) open at once")
    print("bytes: sent \(statistics.bytesSent) (\(Report.bytes(statistics.bytesSent))), verified \(statistics.bytesVerified) (\(Report.bytes(statistics.bytesVerified))), "
        + "corrupted \(statistics.bytesCorrupted), lost \(statistics.bytesLost), abandoned by client resets/cancels \(statistics.bytesAbandoned)")
    print("connections by outcome:")
    for outcome in Outcome.allCases {
        let count = statistics.outcomes[outcome, default: 0]
        if count > 0 || (!outcome.isFailure && (options.tlsCA != nil || !outcome.isTLSOnly)) {
            print("  \(Report.padRight(outcome.rawValue, 44)) \(Report.pad(String(count), 9))")
        }
    }
    print("plans: \(statistics.pipelined) pipelined, \(statistics.slowReaders) slow readers, \(statistics.stalledWriters) stalled writers "
        + "(\(statistics.stallsTaken) stalls taken)")
    if options.tlsCA != nil {
        print("TLS plans: " + TLSPlan.Misbehaviour.allCases.map { "\($0.rawValue) \(statistics.tlsPlans[$0, default: 0])" }.joined(separator: ", ")
            + "; \(statistics.tls12Offered) offered TLS 1.2 only")
        print("TLS handshakes completed: \(statistics.tlsHandshakes) (TLS 1.3 \(statistics.tls13Handshakes), TLS 1.2 \(statistics.tls12Handshakes)); "
            + "renegotiations asked \(statistics.renegotiationsAttempted), refused (connection ended) \(statistics.outcomes[.renegotiationRefused, default: 0]), "
            + "accepted (carried on) \(statistics.renegotiationsContinued)\(statistics.renegotiationsNotStarted > 0 ? ", not started \(statistics.renegotiationsNotStarted)" : "")")
        print("server closed plaintext garbage: \(statistics.garbageCloseTimes.summary)")
        print("server closed stuck handshakes: \(statistics.stuckCloseTimes.summary) (limit \(Report.fixed(options.tlsHandshakeTimeout + options.tlsCloseSlack, 1)) s)")
    }
    if !statistics.failures.isEmpty {
        print("failed connections (first \(statistics.failures.count) of \(statistics.failureCount)):")
        for failure in statistics.failures {
            print("  at \(Report.seconds(failure.atSeconds)): \(failure.outcome.rawValue): \(failure.detail)\n      plan: \(failure.plan)")
        }
    }
    for report in serverReports { print(report) }
    print("checks:")
    for check in checks { print("  \(check.passed ? "ok  " : "FAIL") \(check.text)") }
    let passed = checks.allSatisfy(\.passed)
    print(passed ? "chaos-soak: PASS (\(options.label), seed \(options.seed))" : "chaos-soak: FAIL (\(options.label), seed \(options.seed))")
    fflush(nil)
    return passed ? 0 : 1
}

/// The TLS line of the banner (empty on plaintext).
func tlsDescription(_ options: SoakOptions) -> String {
    guard let ca = options.tlsCA else { return "" }
    let mix = options.tlsMix
    return """

          TLS: trusting \(ca), server name \(options.tlsServerName); TLS 1.2 only \(mix.tls12)%, \
        plaintext garbage \(mix.garbage)%, handshake cut \(mix.cutHandshake)%, never finished \(mix.stuckHandshake)% \
        (server must close within \(Report.fixed(options.tlsHandshakeTimeout + options.tlsCloseSlack, 1)) s), \
        no close_notify \(mix.noCloseNotify)%, renegotiation \(mix.renegotiate)% (TLS 1.2)
        """
}

exit(main())
