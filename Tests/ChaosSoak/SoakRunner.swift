#if canImport(Glibc)
import Glibc
#endif

/// Keeps `--connections` client connections open against the target for `--duration`
/// seconds, replacing each one that ends, then lets the survivors finish (half-close and read
/// every byte back) within `--drain-timeout`. One thread, one `poll` over every socket.
/// Samples each watched server's RSS and descriptors every sampling period.
final class SoakRunner {
    /// One reading of a server's health.
    struct Sample {
        let seconds: Double
        let residentBytes: Int?
        let descriptors: Int?
        /// Taken during the load (not the drain).
        let underLoad: Bool
    }

    private let options: SoakOptions
    private let address: sockaddr_in
    private let probes: [ServerProbe]
    private var slots: [SoakConnection?]
    private var pollSet: [pollfd]
    private var freeSlots: [Int]
    private var open = 0
    private var nextSerial = 0
    private var start: Int64 = 0
    private let tlsClient: TLSClient?
    private let hostileCloseLimit: Int64
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let writeBuffer: UnsafeMutableRawBufferPointer
    private(set) var statistics = SoakStatistics()
    private(set) var samples: [[Sample]]
    /// Descriptors of each server before the first connection.
    private(set) var baselineDescriptors: [Int?] = []
    /// Set when a watched server died during the run.
    private(set) var serverDeath: String?
    private(set) var loadSeconds = 0.0
    private(set) var drainSeconds = 0.0
    /// Connections that had ended when the warm-up (first part of the load) was over.
    private(set) var endedAfterWarmUp = 0

    /// Connections opened per poll turn at most, so a burst of connects does not hold up the
    /// connections already open.
    private static let opensPerTurn = 200

    init(options: SoakOptions) throws(UsageError) {
        self.options = options
        tlsClient = try options.tlsCA.map { caFile throws(UsageError) in try TLSClient(caFile: caFile, serverName: options.tlsServerName) }
        hostileCloseLimit = Clock.seconds(options.tlsHandshakeTimeout + options.tlsCloseSlack)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = options.port.bigEndian
        inet_pton(AF_INET, options.host, &address.sin_addr)
        self.address = address
        probes = options.servers.map { ServerProbe(name: $0.name, pid: $0.pid) }
        slots = Array(repeating: nil, count: options.connections)
        pollSet = Array(repeating: pollfd(fd: -1, events: 0, revents: 0), count: options.connections)
        freeSlots = Array((0..<options.connections).reversed())
        samples = Array(repeating: [], count: options.servers.count)
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        writeBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        readBuffer.deallocate()
        writeBuffer.deallocate()
    }

    var probeList: [ServerProbe] { probes }

    private func seconds(at now: Int64) -> Double { Double(now - start) / 1e9 }

    /// Runs the load and the drain; every client socket is closed when it returns.
    func run() {
        baselineDescriptors = probes.map { $0.descriptorCount() }
        start = Clock.now()
        let period = Clock.seconds(options.samplePeriod)
        let loadEnd = start + Clock.seconds(options.duration)
        let warmUpEnd = start + Clock.seconds(options.duration * options.warmUpFraction)
        let stallLimit = Clock.seconds(options.stallTimeout)
        var drainDeadline: Int64?
        var warmUpCounted = false

        // Before any connection: the idle reference, not part of the load.
        takeSample(now: start, underLoad: false, note: "before the first connection")
        var nextSample = start + period
        while true {
            var now = Clock.now()
            if !warmUpCounted, now >= warmUpEnd {
                warmUpCounted = true
                endedAfterWarmUp = statistics.connectionsEnded
            }
            if drainDeadline == nil, now >= loadEnd {
                takeSample(now: now, underLoad: true, note: "load over: draining \(open) connection(s)")
                drainDeadline = now + Clock.seconds(options.drainTimeout)
                loadSeconds = seconds(at: now)
                for index in slots.indices {
                    guard let connection = slots[index] else { continue }
                    connection.beginFinishing()
                    if let ending = connection.settle(now: now, statistics: &statistics) { finish(index, ending, now: now) }
                }
            }
            if let deadline = drainDeadline {
                if open == 0 { break }
                if now >= deadline {
                    for index in slots.indices {
                        guard let connection = slots[index] else { continue }
                        finish(index, connection.terminate(.unfinished, "still open \(options.drainTimeout) s after the load ended"), now: now)
                    }
                    break
                }
            } else {
                openConnections(now: now)
            }
            if now >= nextSample {
                takeSample(now: now, underLoad: drainDeadline == nil)
                nextSample += period
                if serverDeath != nil { break }
            }

            // What to wait for, and until when; and which connections can read without waiting
            // (bytes OpenSSL holds, which poll cannot see).
            var wakeUp = min(nextSample, drainDeadline ?? loadEnd)
            var readyNow: [Int] = []
            for index in slots.indices {
                guard let connection = slots[index] else {
                    pollSet[index].fd = -1
                    continue
                }
                if now - connection.lastProgress > stallLimit {
                    let outcome: Outcome = connection.phase == .connecting ? .connectFailed : .stalled
                    finish(index, connection.terminate(outcome, "no progress for \(options.stallTimeout) s"), now: now)
                    pollSet[index].fd = -1
                    continue
                }
                if connection.timerDue(now: now), let ending = connection.settle(now: now, statistics: &statistics) {
                    finish(index, ending, now: now)
                    pollSet[index].fd = -1
                    continue
                }
                pollSet[index] = pollfd(fd: connection.fd, events: connection.events(now: now), revents: 0)
                if connection.hasBufferedInput(now: now) { readyNow.append(index) }
                if let next = connection.nextWakeUp(after: now) { wakeUp = min(wakeUp, next) }
            }
            let timeout = readyNow.isEmpty ? Int32(clamping: max(0, (wakeUp - now + 999_999) / 1_000_000)) : 0
            let ready = poll(&pollSet, nfds_t(pollSet.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                fatal("poll: \(String(cString: strerror(errno)))")
            }
            guard ready > 0 || !readyNow.isEmpty else { continue }
            for index in readyNow { pollSet[index].revents |= Int16(POLLIN) }
            now = Clock.now()
            for index in pollSet.indices where pollSet[index].fd >= 0 && pollSet[index].revents != 0 {
                guard let connection = slots[index] else { continue }
                if let ending = connection.service(pollSet[index].revents, now: now, statistics: &statistics,
                                                   readBuffer: readBuffer, writeBuffer: writeBuffer) {
                    finish(index, ending, now: now)
                }
            }
        }
        let now = Clock.now()
        if drainDeadline == nil { loadSeconds = seconds(at: now) }
        drainSeconds = seconds(at: now) - loadSeconds
        // A server died: close what is left.
        for index in slots.indices {
            guard let connection = slots[index] else { continue }
            finish(index, connection.terminate(.unfinished, "the run stopped: \(serverDeath ?? "")"), now: now)
        }
        takeSample(now: now, underLoad: false, note: "all client connections closed")
    }

    private func openConnections(now: Int64) {
        var opened = 0
        while opened < Self.opensPerTurn, let index = freeSlots.popLast() {
            opened += 1
            let plan = ConnectionPlan(serial: nextSerial, seed: options.seed, options: options)
            nextSerial += 1
            statistics.connectionsStarted += 1
            if plan.slowReader { statistics.slowReaders += 1 }
            if !plan.stalls.isEmpty { statistics.stalledWriters += 1 }
            if plan.pipelined { statistics.pipelined += 1 }
            if let tls = plan.tls {
                statistics.tlsPlans[tls.misbehaviour, default: 0] += 1
                if tls.tls12Only { statistics.tls12Offered += 1 }
            }
            var failure: SoakConnection.Ending?
            if let connection = SoakConnection(plan: plan, seed: options.seed, address: address, tlsClient: tlsClient,
                                               hostileCloseLimit: hostileCloseLimit, now: now, failure: &failure) {
                slots[index] = connection
                open += 1
            } else if let failure {
                freeSlots.append(index)
                statistics.record(failure.outcome, plan: plan, sent: 0, received: 0, detail: failure.detail, at: seconds(at: now))
                if failure.outcome == .clientError { fatal("cannot open a client connection: \(failure.detail)") }
                break  // refused: try again next turn rather than spin
            }
        }
    }

    /// After the run: one well-behaved connection (over TLS: a full handshake, a few
    /// messages, close_notify) must be served within `timeout` seconds, so the server is still
    /// accepting and serving. Returns nil when it was, or what went wrong.
    func checkStillServing(timeout: Double) -> String? {
        let plan = ConnectionPlan(serial: nextSerial, seed: options.seed, options: options, honest: true)
        nextSerial += 1
        var scratch = SoakStatistics()
        var failure: SoakConnection.Ending?
        let start = Clock.now()
        guard let connection = SoakConnection(plan: plan, seed: options.seed, address: address, tlsClient: tlsClient,
                                              hostileCloseLimit: hostileCloseLimit, now: start, failure: &failure)
        else { return "could not connect: \(failure?.detail ?? "")" }
        let deadline = start + Clock.seconds(timeout)
        var ending: SoakConnection.Ending?
        while ending == nil {
            let now = Clock.now()
            if now >= deadline {
                ending = connection.terminate(.stalled, "not served within \(timeout) s")
                break
            }
            if connection.hasBufferedInput(now: now) {
                ending = connection.service(Int16(POLLIN), now: now, statistics: &scratch, readBuffer: readBuffer, writeBuffer: writeBuffer)
                continue
            }
            var entry = pollfd(fd: connection.fd, events: connection.events(now: now), revents: 0)
            let ready = poll(&entry, 1, 100)
            if ready > 0 {
                ending = connection.service(entry.revents, now: Clock.now(), statistics: &scratch, readBuffer: readBuffer, writeBuffer: writeBuffer)
            }
        }
        guard let ending else { return "no ending" }
        if ending.outcome == .echoed, scratch.bytesVerified == plan.totalBytes { return nil }
        return "\(ending.outcome.rawValue) \(ending.detail) (\(scratch.bytesVerified) of \(plan.totalBytes) bytes came back; plan: \(plan.summary))"
    }

    private func finish(_ index: Int, _ ending: SoakConnection.Ending, now: Int64) {
        guard let connection = slots[index] else { return }
        slots[index] = nil
        freeSlots.append(index)
        open -= 1
        statistics.record(ending.outcome, plan: connection.plan, sent: connection.sent, received: connection.received,
                          detail: ending.detail, at: seconds(at: now))
    }

    private func takeSample(now: Int64, underLoad: Bool, note: String? = nil) {
        for (index, probe) in probes.enumerated() {
            samples[index].append(Sample(seconds: seconds(at: now), residentBytes: probe.residentBytes(),
                                         descriptors: probe.descriptorCount(), underLoad: underLoad))
            if serverDeath == nil, !probe.isAlive() {
                serverDeath = "\(probe.name) (pid \(probe.pid)) exited at \(Report.seconds(seconds(at: now)))"
            }
        }
        printProgress(now: now, note: note)
    }

    private func printProgress(now: Int64, note: String?) {
        var line = "[\(Report.pad(Report.seconds(seconds(at: now)), 7))] open \(Report.pad(String(open), 5)) ended \(statistics.connectionsEnded)"
            + " (failed \(statistics.failureCount)) sent \(Report.bytes(statistics.bytesSent)) verified \(Report.bytes(statistics.bytesVerified))"
        for (index, probe) in probes.enumerated() {
            if let last = samples[index].last {
                line += " | \(probe.name) rss \(last.residentBytes.map(Report.mebibytes) ?? "-") fds \(last.descriptors.map(String.init) ?? "-")"
            }
        }
        if let note { line += " -- \(note)" }
        print(line)
        fflush(nil)
    }

    private func fatal(_ message: String) -> Never {
        print("chaos-soak: \(message)")
        fflush(nil)
        exit(1)
    }
}
