#if canImport(Glibc)
import Glibc
#endif

/// One client connection: a non-blocking POSIX socket that the poll loop drives through its
/// plan. It writes its messages (the connection's ``BytePattern`` stream, cut into messages),
/// reads the echo concurrently and checks every byte against the pattern, pauses where the
/// plan says (slow reader, stalled writer), and ends as planned: close once everything came
/// back, half-close and read to end of stream, reset, or abandon.
///
/// Over TLS (``TLSSession``: OpenSSL over memory BIOs, the socket I/O still this class's own
/// recv/send) it first runs the handshake, sends close_notify where it closes or half-closes,
/// and may misbehave as its ``TLSPlan`` says (see SoakConnection+TLS.swift).
///
/// The poll loop asks ``events(now:)`` for what to wait for, calls ``service(_:now:statistics:)``
/// with what happened and ``settle(now:statistics:)`` when a pause ended; each returns an
/// ``Ending`` once the connection is over (its descriptor is closed by then).
final class SoakConnection {
    enum Phase: String {
        case connecting, open
        /// TLS: the handshake runs (honestly, or towards its planned cut).
        case handshaking
        /// TLS: plaintext garbage sent, or the handshake stopped: waiting for the server to
        /// close the connection, until ``hostileDeadline``.
        case waitingForClose = "waiting for the server to close"
    }

    struct Ending {
        let outcome: Outcome
        let detail: String
    }

    let plan: ConnectionPlan
    let fd: Int32
    let startedAt: Int64
    var phase = Phase.connecting
    /// Bytes of the stream the kernel accepted.
    private(set) var sent = 0
    /// Bytes of the echo read and checked.
    private(set) var received = 0
    var lastProgress: Int64
    private(set) var readPausedUntil: Int64 = 0
    private(set) var writePausedUntil: Int64 = 0
    let pattern: BytePattern
    private var random: SplitMix64
    private var messageIndex = 0
    /// Messages to send; lowered to the current one when the run ends (finishing).
    private var messageCount: Int
    /// Stream offset where the current message ends.
    private var messageEnd: Int
    private var outputShutDown = false
    private(set) var finishing = false
    private var nextStall = 0
    private var localPort: UInt16 = 0

    // TLS (nil and unused on plaintext; see SoakConnection+TLS.swift).
    /// OpenSSL's side of the connection, for every TLS plan but plaintext garbage.
    let tls: TLSSession?
    /// Plaintext garbage queued for the socket.
    var garbage = OutgoingBytes()
    /// When the TCP connection was established (the server's handshake timeout starts then).
    var openedAt: Int64 = 0
    /// In ``Phase/waitingForClose``: the server must have closed by then.
    var hostileDeadline: Int64 = 0
    /// close_notify queued, TCP write side not yet shut down (once it is sent).
    var tcpShutdownPending = false
    /// The ending to report once the queued ciphertext (close_notify) is out; then close.
    var closeAfterFlush: Ending?
    var renegotiating = false
    var renegotiated = false
    /// How long after the TCP connection the server must have closed plaintext garbage or a
    /// stuck handshake: its handshake timeout plus slack.
    let hostileCloseLimit: Int64

    /// Most bytes one connection moves in each direction per poll turn, so that no
    /// connection holds up the others.
    private static let budgetPerTurn = 256 * 1024
    private static let slowChunk = 1...512
    private static let slowPauseMilliseconds = 1...10

    /// Opens a non-blocking socket and starts connecting to `address`. Returns nil, with
    /// `failure` set, if that fails at once.
    init?(plan: ConnectionPlan, seed: UInt64, address: sockaddr_in, tlsClient: TLSClient?, hostileCloseLimit: Int64,
          now: Int64, failure: inout Ending?) {
        self.plan = plan
        self.hostileCloseLimit = hostileCloseLimit
        if let tlsPlan = plan.tls, tlsPlan.misbehaviour != .garbage, let tlsClient {
            guard let session = TLSSession(client: tlsClient, tls12Only: tlsPlan.tls12Only) else {
                failure = Ending(outcome: .clientError, detail: "OpenSSL could not make an SSL object: \(TLSClient.takeErrors())")
                return nil
            }
            tls = session
        } else {
            tls = nil
        }
        pattern = BytePattern(seed: seed, serial: plan.serial)
        random = SplitMix64(seed: SplitMix64.derive(seed, stream: 3, index: plan.serial))
        messageCount = plan.messageSizes.count
        messageEnd = plan.messageSizes[0]
        startedAt = now
        lastProgress = now
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            failure = Ending(outcome: .clientError, detail: "socket: \(Self.describe(errno))")
            return nil
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 || errno == EINPROGRESS { localPort = readLocalPort() }
        if result == 0 {
            phase = .open
            openedAt = now
        } else if errno != EINPROGRESS {
            let error = errno
            close(fd)
            failure = Ending(outcome: error == ECONNREFUSED ? .connectFailed : .clientError, detail: "connect: \(Self.describe(error))")
            return nil
        }
    }

    // MARK: What to wait for

    /// The poll events this connection waits for now.
    func events(now: Int64) -> Int16 {
        if phase == .connecting { return Int16(POLLOUT) }
        var events: Int16 = 0
        if tls?.outgoing.hasSendable == true || garbage.hasSendable { events |= Int16(POLLOUT) }
        if phase == .handshaking || phase == .waitingForClose { return events | Int16(POLLIN) }
        if closeAfterFlush != nil { return events }
        if now >= readPausedUntil { events |= Int16(POLLIN) }
        if now >= writePausedUntil, writeLimit > sent, !renegotiating { events |= Int16(POLLOUT) }
        return events
    }

    /// Whether a read would give bytes that poll cannot see (TLS: decrypted or undecrypted
    /// bytes OpenSSL holds): the poll loop then serves the connection without waiting.
    func hasBufferedInput(now: Int64) -> Bool {
        phase == .open && closeAfterFlush == nil && now >= readPausedUntil && tls?.hasBufferedInput == true
    }

    /// The earliest pause that ends after `now`, if any.
    func nextWakeUp(after now: Int64) -> Int64? {
        var next: Int64?
        if readPausedUntil > now { next = readPausedUntil }
        if writePausedUntil > now { next = min(next ?? .max, writePausedUntil) }
        if phase == .waitingForClose, hostileDeadline > now { next = min(next ?? .max, hostileDeadline) }
        return next
    }

    /// Whether a writer's pause ended before `now`, or a hostile handshake's deadline passed
    /// (then call ``settle(now:statistics:)``).
    func timerDue(now: Int64) -> Bool {
        (writePausedUntil != 0 && now >= writePausedUntil) || (phase == .waitingForClose && now >= hostileDeadline)
    }

    /// How far the writer may go now: the end of the current message, or a planned stall or
    /// abort inside it.
    private var writeLimit: Int {
        var limit = messageEnd
        if !finishing {
            if plan.ending == .reset || plan.ending == .cancel, plan.abortSide == .write { limit = min(limit, plan.abortOffset) }
            if nextStall < plan.stalls.count { limit = min(limit, plan.stalls[nextStall].offset) }
            if renegotiationDue { limit = min(limit, plan.messageSizes[0]) }
        }
        return limit
    }

    /// Whether reads stop at the planned abort offset.
    private var readCapped: Bool {
        !finishing && (plan.ending == .reset || plan.ending == .cancel) && plan.abortSide == .read
    }

    private var allSent: Bool { sent == messageEnd && messageIndex == messageCount - 1 }

    // MARK: Driving

    /// Handles what poll reported (`revents`).
    func service(_ revents: Int16, now: Int64, statistics: inout SoakStatistics,
                 readBuffer: UnsafeMutableRawBufferPointer, writeBuffer: UnsafeMutableRawBufferPointer) -> Ending? {
        if phase == .connecting {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return end(.connectFailed, "connect: \(Self.describe(error))") }
            phase = .open
            openedAt = now
            lastProgress = now
            if plan.tls != nil { return startTLS(now: now, statistics: &statistics) }
            return settle(now: now, statistics: &statistics)
        }
        if phase == .handshaking || phase == .waitingForClose {
            return serviceHandshake(revents, now: now, statistics: &statistics, readBuffer: readBuffer)
        }
        let hangUp = revents & Int16(POLLERR | POLLHUP) != 0
        if revents & Int16(POLLIN) != 0 || hangUp {
            // A hang-up is reported even while a slow reader pauses: read it now rather than
            // spin on it.
            if let ending = read(now: now, ignoringPause: hangUp, statistics: &statistics, buffer: readBuffer) { return ending }
        }
        if revents & Int16(POLLOUT) != 0 {
            if let ending = write(now: now, statistics: &statistics, buffer: writeBuffer) { return ending }
        }
        if let ending = flushTLS(now: now) { return ending }
        return settle(now: now, statistics: &statistics)
    }

    /// Moves the plan on after bytes moved or a pause ended: the next message, a stall, an
    /// abort that is due, the graceful end.
    func settle(now: Int64, statistics: inout SoakStatistics) -> Ending? {
        if writePausedUntil != 0, now >= writePausedUntil { writePausedUntil = 0 }
        if readPausedUntil != 0, now >= readPausedUntil { readPausedUntil = 0 }
        if phase == .waitingForClose, now >= hostileDeadline {
            return end(.hostileNotClosed, "the server still had it open \(Report.fixed(Double(now - openedAt) / 1e9, 1)) s after the connection was made")
        }
        guard phase == .open else { return nil }
        if let ending = closeAfterFlush {
            guard tls?.outgoing.hasSendable != true else { return nil }
            close(fd)
            return ending
        }
        if let ending = settleTLS(now: now, statistics: &statistics) { return ending }
        if renegotiating { return nil }
        while sent == messageEnd, messageIndex + 1 < messageCount {
            if !plan.pipelined, received < sent { break }  // ping-pong: wait for the echo first
            messageIndex += 1
            messageEnd += plan.messageSizes[messageIndex]
        }
        if !finishing {
            if plan.ending == .reset || plan.ending == .cancel {
                if plan.abortSide == .write, sent >= plan.abortOffset { return abort() }
                if plan.abortSide == .read, received >= plan.abortOffset { return abort() }
            }
            if nextStall < plan.stalls.count, sent >= plan.stalls[nextStall].offset, writePausedUntil == 0 {
                writePausedUntil = now + Clock.milliseconds(plan.stalls[nextStall].milliseconds)
                nextStall += 1
                statistics.stallsTaken += 1
            }
        }
        // Resets and cancels end at their abort offset, unless the run ended first.
        let endsGracefully = finishing || plan.ending == .close || plan.ending == .halfClose
        guard allSent, endsGracefully else { return nil }
        if plan.ending == .close, !finishing {
            if received == sent { return closeGracefully(now: now) }
        } else if !outputShutDown {
            outputShutDown = true
            if let tls {
                // TLS half-close: close_notify, then (once it is out) FIN.
                tls.sendCloseNotify()
                tcpShutdownPending = true
                if let ending = flushTLS(now: now) { return ending }
            } else if let ending = shutDownWriteSide() {
                return ending
            }
        }
        if tcpShutdownPending, tls?.outgoing.hasSendable != true {
            tcpShutdownPending = false
            if let ending = shutDownWriteSide() { return ending }
        }
        return nil
    }

    private func shutDownWriteSide() -> Ending? {
        guard shutdown(fd, Int32(SHUT_WR)) != 0 else { return nil }
        let error = errno
        return end(error == ENOTCONN ? .resetByServer : .clientError, "shutdown(SHUT_WR): \(Self.describe(error))")
    }

    /// The run is over: finish the current message, then half-close and read to the end;
    /// no more pauses, stalls or aborts.
    func beginFinishing() {
        finishing = true
        messageCount = messageIndex + 1
        readPausedUntil = 0
        writePausedUntil = 0
    }

    /// Ends the connection from outside (stalled, drain deadline): resets it and returns the
    /// ending.
    func terminate(_ outcome: Outcome, _ detail: String) -> Ending {
        end(outcome, detail)
    }

    /// The client's port (once connecting), to match a failure with server logs or a packet
    /// capture.
    private func readLocalPort() -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? UInt16(bigEndian: address.sin_port) : 0
    }

    var state: String {
        "port \(localPort), \(phase.rawValue), sent \(sent), received \(received), message \(messageIndex + 1)/\(messageCount)"
            + (outputShutDown ? ", write side shut down" : "") + (finishing ? ", finishing" : "")
            + (tls.map { ", \(phase == .open ? ($0.isTLS13 ? "TLS 1.3" : "TLS 1.2") : "TLS not negotiated yet"), \($0.outgoing.count) B ciphertext queued" } ?? "")
            + (renegotiating ? ", renegotiating" : "")
    }

    // MARK: Reading

    private func read(now: Int64, ignoringPause: Bool, statistics: inout SoakStatistics,
                      buffer: UnsafeMutableRawBufferPointer) -> Ending? {
        var budget = Self.budgetPerTurn
        while budget > 0 {
            if !ignoringPause, now < readPausedUntil { return nil }
            let slow = plan.slowReader && !finishing
            var wanted = slow ? Int.random(in: Self.slowChunk, using: &random) : buffer.count
            if readCapped {
                wanted = min(wanted, plan.abortOffset - received)
                if wanted <= 0 { return abort() }
            }
            let count: Int
            if let tls {
                switch tls.read(into: buffer, wanted: wanted, from: fd) {
                case .bytes(let bytes): count = bytes
                case .wouldBlock: return nil
                case .closeNotify: return endOfStream(closeNotify: true)
                case .endOfStream: return endOfStream(closeNotify: false)
                case .socketError(let error): return readFailed(error)
                case .tlsError(let message):
                    if renegotiating { return renegotiationEnded("TLS error: \(message)") }
                    return end(.tlsFailure, "SSL_read: \(message) after \(received) of \(sent) bytes came back")
                }
            } else {
                count = recv(fd, buffer.baseAddress, wanted, Int32(MSG_DONTWAIT))
                if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return nil }
                if count < 0, errno == EINTR { continue }
                if count < 0 { return readFailed(errno) }
                if count == 0 { return endOfStream(closeNotify: true) }
            }
            if count > 0 {
                if let ending = check(UnsafeRawBufferPointer(rebasing: buffer[..<count]), statistics: &statistics) { return ending }
                received += count
                lastProgress = now
                budget -= count
                if slow {
                    readPausedUntil = now + Clock.milliseconds(Int.random(in: Self.slowPauseMilliseconds, using: &random))
                    return nil
                }
                if readCapped, received >= plan.abortOffset { return abort() }
                continue
            }
        }
        return nil
    }

    /// The server ended the stream (plaintext: EOF; TLS: close_notify, or EOF without one).
    private func endOfStream(closeNotify: Bool) -> Ending {
        if renegotiating {
            close(fd)
            return Ending(outcome: .renegotiationRefused, detail: "")
        }
        if outputShutDown, received == sent {
            guard closeNotify else {
                return end(.missingCloseNotify, "every byte came back, then end of stream without the server's close_notify")
            }
            close(fd)
            return Ending(outcome: finishing ? .drained : .halfClosed, detail: "")
        }
        return end(.earlyEndOfStream, "\(closeNotify ? (tls == nil ? "end of stream" : "close_notify") : "end of stream without close_notify") after \(received) of \(sent) bytes sent came back")
    }

    private func readFailed(_ error: Int32) -> Ending {
        if renegotiating {
            close(fd)
            return Ending(outcome: .renegotiationRefused, detail: "")
        }
        switch error {
        case ECONNRESET, EPIPE: return end(.resetByServer, "recv: \(Self.describe(error)) after \(received) of \(sent) bytes came back")
        default: return end(.clientError, "recv: \(Self.describe(error))")
        }
    }

    /// Checks received bytes against the pattern at the current offset.
    private func check(_ bytes: UnsafeRawBufferPointer, statistics: inout SoakStatistics) -> Ending? {
        let expected = min(bytes.count, sent - received)
        if let bad = pattern.firstMismatch(in: UnsafeRawBufferPointer(rebasing: bytes[..<expected]), from: received) {
            statistics.bytesVerified += bad
            statistics.bytesCorrupted += bytes.count - bad
            let offset = received + bad
            let context = (max(bad - 4, 0)..<min(bad + 12, expected))
            return end(.corrupted, "byte at stream offset \(offset) is 0x\(Self.hex(bytes[bad])), expected 0x\(Self.hex(pattern.byte(at: offset)))"
                + "; got \(context.map { Self.hex(bytes[$0]) }.joined(separator: " ")) expected \(context.map { Self.hex(pattern.byte(at: received + $0)) }.joined(separator: " ")) from offset \(received + context.lowerBound)")
        }
        statistics.bytesVerified += expected
        if expected < bytes.count {
            statistics.bytesCorrupted += bytes.count - expected
            return end(.corrupted, "\(bytes.count - expected) more bytes came back than were sent (\(sent))")
        }
        return nil
    }

    // MARK: Writing

    private func write(now: Int64, statistics: inout SoakStatistics, buffer: UnsafeMutableRawBufferPointer) -> Ending? {
        if tls != nil { return writeTLS(now: now, statistics: &statistics, buffer: buffer) }
        var budget = Self.budgetPerTurn
        while budget > 0, now >= writePausedUntil {
            let limit = writeLimit
            guard limit > sent else { return nil }
            let count = min(limit - sent, buffer.count)
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[..<count])
            pattern.fill(chunk, from: sent)
            let written = send(fd, chunk.baseAddress, count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if written > 0 {
                sent += written
                statistics.bytesSent += written
                lastProgress = now
                budget -= written
                if written < count || sent == limit { return nil }  // full, or a stall or abort point: settle decides
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return nil
            case EINTR: continue
            case ECONNRESET, EPIPE: return end(.resetByServer, "send: \(Self.describe(errno)) after sending \(sent) bytes")
            default: return end(.clientError, "send: \(Self.describe(errno))")
            }
        }
        return nil
    }

    /// The TLS writer: encrypts the plan's bytes a record at a time into the session's
    /// outgoing ciphertext, and sends that as the socket takes it; waits for the socket once
    /// ``TLSSession/outgoingLimit`` bytes are queued.
    private func writeTLS(now: Int64, statistics: inout SoakStatistics, buffer: UnsafeMutableRawBufferPointer) -> Ending? {
        guard let tls else { return nil }
        var budget = Self.budgetPerTurn
        while budget > 0, now >= writePausedUntil, !renegotiating {
            if let ending = flushTLS(now: now) { return ending }
            guard tls.outgoing.count < TLSSession.outgoingLimit else { return nil }
            let limit = writeLimit
            guard limit > sent else { break }
            let count = min(limit - sent, buffer.count, TLSSession.recordSize)
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[..<count])
            pattern.fill(chunk, from: sent)
            let (written, failure) = tls.write(UnsafeRawBufferPointer(chunk))
            if let failure { return end(.tlsFailure, "SSL_write: \(failure) after sending \(sent) bytes") }
            guard written > 0 else { break }
            sent += written
            statistics.bytesSent += written
            lastProgress = now
            budget -= written
            if sent == limit { break }  // a stall or abort point: settle decides
        }
        return flushTLS(now: now)
    }

    // MARK: Ending

    /// Gives the connection up as planned: a reset (`SO_LINGER` 0, then close: RST at once) or
    /// a plain close, as a cancelled task's connection is closed.
    private func abort() -> Ending {
        if plan.ending == .reset {
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            close(fd)
            return Ending(outcome: .resetByClient, detail: "")
        }
        close(fd)
        return Ending(outcome: plan.abortSide == .write ? .cancelledMidWrite : .cancelledMidRead, detail: "")
    }

    /// Ends with a failure: resets the connection (so the server sees it go at once) and says
    /// where the connection was.
    func end(_ outcome: Outcome, _ detail: String) -> Ending {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
        return Ending(outcome: outcome, detail: "\(detail) [\(state)]")
    }

    static func describe(_ error: Int32) -> String {
        "\(String(cString: strerror(error))) (errno \(error))"
    }

    private static func hex(_ byte: UInt8) -> String {
        byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
    }
}
