#if canImport(Glibc)
import Glibc
#endif

/// The TLS side of a connection: the handshake (honest, cut, or stuck at a planned byte),
/// plaintext garbage, close_notify, renegotiation, and waiting for the server to close a
/// hostile handshake within its handshake timeout.
extension SoakConnection {
    /// The TCP connection is up: send garbage, or start the handshake.
    func startTLS(now: Int64, statistics: inout SoakStatistics) -> Ending? {
        guard let tlsPlan = plan.tls else { return nil }
        if tlsPlan.misbehaviour == .garbage {
            queueGarbage(tlsPlan)
            phase = .waitingForClose
            hostileDeadline = openedAt + hostileCloseLimit
            return flushGarbage(now: now, statistics: &statistics)
        }
        phase = .handshaking
        return handshakeStep(now: now, statistics: &statistics)
    }

    /// Poll reported something during the handshake or while waiting for the server to close.
    func serviceHandshake(_ revents: Int16, now: Int64, statistics: inout SoakStatistics,
                          readBuffer: UnsafeMutableRawBufferPointer) -> Ending? {
        let readable = revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
        if phase == .waitingForClose {
            if revents & Int16(POLLOUT) != 0, let ending = flushGarbage(now: now, statistics: &statistics) { return ending }
            if readable, let ending = discardUntilClosed(now: now, statistics: &statistics, buffer: readBuffer) { return ending }
            return settle(now: now, statistics: &statistics)  // the deadline
        }
        guard let tls else { return nil }
        if revents & Int16(POLLOUT) != 0, let ending = flushTLS(now: now) { return ending }
        if readable {
            switch tls.feed(from: fd) {
            case .fed: lastProgress = now
            case .wouldBlock: break
            case .endOfStream: return end(.handshakeFailed, "end of stream from the server during the handshake\(stopText)")
            case .socketError(let error): return end(.handshakeFailed, "recv: \(Self.describe(error)) during the handshake\(stopText)")
            }
        }
        return handshakeStep(now: now, statistics: &statistics)
    }

    private var stopText: String {
        guard let tlsPlan = plan.tls, tlsPlan.misbehaviour == .cutHandshake || tlsPlan.misbehaviour == .stuckHandshake else { return "" }
        return " (before its planned stop in flight \(tlsPlan.stopFlight))"
    }

    /// Runs the handshake as far as it goes; for a cut or stuck plan, stops sending at the
    /// planned byte of the planned flight (known once OpenSSL wrote that flight).
    private func handshakeStep(now: Int64, statistics: inout SoakStatistics) -> Ending? {
        guard let tls, let tlsPlan = plan.tls else { return nil }
        let step = tls.handshake()
        let cut = tlsPlan.misbehaviour == .cutHandshake
        if cut || tlsPlan.misbehaviour == .stuckHandshake {
            if tls.outgoing.cap == nil, tls.flights.count >= tlsPlan.stopFlight {
                let before = tls.flights.prefix(tlsPlan.stopFlight - 1).reduce(0, +)
                let length = tls.flights[tlsPlan.stopFlight - 1]
                let point: Int
                if cut {
                    point = length > 1 ? 1 + Int(tlsPlan.stopPoint % UInt64(length - 1)) : 0  // inside it
                } else if tlsPlan.stopFlight == 1 {
                    point = Int(tlsPlan.stopPoint % UInt64(length + 1))  // nothing ... all of the ClientHello
                } else {
                    point = Int(tlsPlan.stopPoint % UInt64(length))  // the second flight, never all of it
                }
                tls.outgoing.cap = before + point
            }
            if let ending = flushTLS(now: now) { return ending }
            if tls.outgoing.capReached {
                if cut {
                    if tlsPlan.resetAfterCut {
                        var option = linger(l_onoff: 1, l_linger: 0)
                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
                    }
                    close(fd)
                    return Ending(outcome: tlsPlan.resetAfterCut ? .handshakeCutReset : .handshakeCutClosed, detail: "")
                }
                phase = .waitingForClose
                hostileDeadline = openedAt + hostileCloseLimit
                return nil
            }
            if case .failed(let message) = step { return end(.handshakeFailed, message + stopText) }
            return nil
        }
        if let ending = flushTLS(now: now) { return ending }
        switch step {
        case .wantsInput:
            return nil
        case .failed(let message):
            return end(.handshakeFailed, message)
        case .done:
            phase = .open
            lastProgress = now
            statistics.tlsHandshakes += 1
            if tls.isTLS13 { statistics.tls13Handshakes += 1 } else { statistics.tls12Handshakes += 1 }
            if tlsPlan.tls12Only, tls.isTLS13 { return end(.clientError, "TLS 1.3 negotiated though only TLS 1.2 was offered") }
            return settle(now: now, statistics: &statistics)
        }
    }

    /// Sends queued ciphertext; a failed send ends the connection.
    func flushTLS(now: Int64) -> Ending? {
        guard let tls, tls.outgoing.hasSendable else { return nil }
        let before = tls.outgoing.sentTotal
        switch tls.outgoing.flush(to: fd) {
        case .done, .blocked:
            if tls.outgoing.sentTotal > before { lastProgress = now }
            return nil
        case .failed(let error):
            if renegotiating {
                close(fd)
                return Ending(outcome: .renegotiationRefused, detail: "")
            }
            if phase == .handshaking { return end(.handshakeFailed, "send: \(Self.describe(error)) during the handshake\(stopText)") }
            return end(error == ECONNRESET || error == EPIPE ? .resetByServer : .clientError,
                       "send: \(Self.describe(error)) after sending \(sent) bytes")
        }
    }

    /// Every byte came back: close_notify, then close (or, planned, a close without it).
    func closeGracefully(now: Int64) -> Ending? {
        guard let tls else {
            close(fd)
            return Ending(outcome: .echoed, detail: "")
        }
        if plan.tls?.misbehaviour == .noCloseNotify {
            close(fd)
            return Ending(outcome: .closedWithoutCloseNotify, detail: "")
        }
        tls.sendCloseNotify()
        closeAfterFlush = Ending(outcome: .echoed, detail: "")
        if let ending = flushTLS(now: now) { return ending }
        guard !tls.outgoing.hasSendable else { return nil }
        close(fd)
        return closeAfterFlush
    }

    /// A renegotiating plan is still to ask (the writer stops at the end of the first message
    /// until it has).
    var renegotiationDue: Bool {
        plan.tls?.misbehaviour == .renegotiate && !renegotiated && !renegotiating && !finishing
    }

    /// Renegotiation: asks once the first message came back; notices when a renegotiation
    /// completed (the server accepted it: the connection carries on).
    func settleTLS(now: Int64, statistics: inout SoakStatistics) -> Ending? {
        guard let tls, plan.tls?.misbehaviour == .renegotiate else { return nil }
        if renegotiating {
            if !tls.renegotiationPending {
                renegotiating = false
                renegotiated = true
                statistics.renegotiationsContinued += 1
            }
            return nil
        }
        guard renegotiationDue, sent >= plan.messageSizes[0], received == sent else { return nil }
        statistics.renegotiationsAttempted += 1
        guard tls.renegotiate() else {
            renegotiated = true
            statistics.renegotiationsNotStarted += 1
            return nil
        }
        renegotiating = true
        return flushTLS(now: now)
    }

    /// The renegotiation ended the connection (an alert, a TLS error, the server closing).
    func renegotiationEnded(_ detail: String) -> Ending {
        close(fd)
        return Ending(outcome: .renegotiationRefused, detail: detail)
    }

    // MARK: Plaintext garbage, and waiting for the server to close

    private func queueGarbage(_ tlsPlan: TLSPlan) {
        var bytes = [UInt8](repeating: 0, count: tlsPlan.garbageLength)
        bytes.withUnsafeMutableBytes { pattern.fill($0, from: 0) }
        if tlsPlan.garbageIsHTTP {
            // A request line and headers, padded with letters drawn from the pattern.
            let head = Array("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: chaos-soak\r\nX-Padding: ".utf8)
            for index in bytes.indices { bytes[index] = UInt8(ascii: "a") + bytes[index] % 26 }
            bytes = head + bytes + Array("\r\n\r\n".utf8)
        }
        bytes.withUnsafeBytes { garbage.append($0) }
    }

    private func flushGarbage(now: Int64, statistics: inout SoakStatistics) -> Ending? {
        guard garbage.hasSendable else { return nil }
        switch garbage.flush(to: fd) {
        case .done, .blocked: return nil
        case .failed: return serverClosed(now: now, statistics: &statistics)  // the server is gone already
        }
    }

    /// Reads and drops what the server sends (its handshake flight, an alert) until it closes.
    private func discardUntilClosed(now: Int64, statistics: inout SoakStatistics, buffer: UnsafeMutableRawBufferPointer) -> Ending? {
        for _ in 0..<16 {
            let count = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                lastProgress = now
                continue
            }
            if count == 0 { return serverClosed(now: now, statistics: &statistics) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            default: return serverClosed(now: now, statistics: &statistics)  // reset by the server
            }
        }
        return nil
    }

    private func serverClosed(now: Int64, statistics: inout SoakStatistics) -> Ending {
        let seconds = Double(now - openedAt) / 1e9
        if now - openedAt > hostileCloseLimit {
            return end(.hostileNotClosed, "the server closed it only \(Report.fixed(seconds, 2)) s after the connection was made")
        }
        close(fd)
        if plan.tls?.misbehaviour == .garbage {
            statistics.garbageCloseTimes.add(seconds)
            return Ending(outcome: .garbageRejected, detail: "")
        }
        statistics.stuckCloseTimes.add(seconds)
        return Ending(outcome: .stuckHandshakeClosed, detail: "")
    }
}
