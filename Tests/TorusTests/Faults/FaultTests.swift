import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Faults across a real link (a veth pair between network namespaces), injected by
    /// nftables where packets arrive: a peer gone silent, a connect into a black hole,
    /// dead-peer detection by keep-alive and TCP_USER_TIMEOUT, a server's idle timeout,
    /// resets in flight.
    @Suite(.enabled(if: FaultHosts.unavailableReason == nil, Comment(rawValue: FaultHosts.unavailableReason ?? "")),
           .noDescriptorLeaks)
    struct FaultTests {
        func address(_ port: UInt16) -> SocketAddress { .ipv4(FaultHosts.server, port: port) }

        /// Every test starts with the link clean, whatever an earlier failure left.
        init() async throws {
            try await FaultHosts.inject(nil)
        }

        @Test func aReadFromAPeerThatWentSilentEndsAtItsTimeout() async throws {
            let peer = try await FaultHosts.startEchoServer(port: 9101)
            let connection = try await Connection.connect(to: address(9101), timeout: .seconds(5))
            try await connection.write("ping")
            #expect(try await connection.read(exactly: 4) == Array("ping".utf8))
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            try await connection.write("lost")
            let started = ContinuousClock.now
            await expectTorusError(.timedOut) { try await connection.read(timeout: .milliseconds(300)) }
            #expect(ContinuousClock.now - started < .seconds(3))
            await connection.close()
            try await FaultHosts.inject(nil)
            _ = peer
        }

        @Test func aConnectToABlackHoledHostEndsAtItsTimeout() async throws {
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            let started = ContinuousClock.now
            let error = await expectTorusError(.timedOut) {
                try await Connection.connect(to: address(9102), timeout: .milliseconds(500))
            }
            #expect(error?.operation == .connect)
            #expect(ContinuousClock.now - started < .seconds(3))
            try await FaultHosts.inject(nil)
        }

        @Test func keepAliveFindsAPeerThatWentSilent() async throws {
            let peer = try await FaultHosts.startEchoServer(port: 9103)
            let options = ConnectionOptions(keepAlive: .init(idle: .seconds(1), interval: .seconds(1), count: 2))
            let connection = try await Connection.connect(to: address(9103), timeout: .seconds(5), options: options)
            try await connection.write("ping")
            #expect(try await connection.read(exactly: 4) == Array("ping".utf8))
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            // A read with no timeout of its own: only keep-alive can end it, after 1 s idle
            // and 2 unanswered probes a second apart (the kernel's clock is coarse: allow 8 s).
            let started = ContinuousClock.now
            let error = await expectTorusError(.timedOut) { try await connection.read() }
            #expect(error?.errno == ETIMEDOUT)
            #expect(ContinuousClock.now - started < .seconds(8))
            await connection.close()
            try await FaultHosts.inject(nil)
            _ = peer
        }

        @Test func aUserTimeoutEndsAWriteToAPeerThatWentSilent() async throws {
            let peer = try await FaultHosts.startEchoServer(port: 9104)
            let connection = try await Connection.connect(to: address(9104), timeout: .seconds(5),
                                                          options: ConnectionOptions(userTimeout: .seconds(1)))
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            // Unacknowledged after 1 s: the kernel gives up, and the write in flight fails.
            let started = ContinuousClock.now
            let big = [UInt8](repeating: 1, count: 16 * 1024 * 1024)
            let error = await expectTorusError(.timedOut) { try await connection.write(big) }
            #expect(error?.errno == ETIMEDOUT)
            #expect(ContinuousClock.now - started < .seconds(8))
            await connection.close()
            try await FaultHosts.inject(nil)
            _ = peer
        }

        /// A `Server` in this host, its client on the other: the link goes dark while the
        /// server is sending, so bytes stay unacknowledged and nothing moves, not even in the
        /// kernel. The idle timeout closes the connection and ends the handler's write.
        @Test func aServerIdleTimeoutClosesAConnectionWhosePeerWentSilent() async throws {
            let listener = try await Listener(bindingTo: .ipv4(FaultHosts.client, port: 9107))
            let idleTimeout: Duration = .milliseconds(500)
            let server = Server(listener: listener, configuration: .init(idleTimeout: idleTimeout))
            let (endings, ending) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    do {
                        // Echo the first line, then send for ever: the link goes dark meanwhile.
                        guard let line = try await connection.read() else { return }
                        try await connection.write(line)
                        let chunk = [UInt8](repeating: 4, count: 64 * 1024)
                        while true { try await connection.write(chunk) }
                    } catch let error as TorusError {
                        ending.yield("\(error.operation): \(error.kind)")
                    }
                }
            }
            // The client: one line, then it reads whatever comes until the test ends.
            let peer = try FaultHosts.inServer(
                "sh -c '(echo ping; sleep 20) | socat -T 30 - TCP4:\(FaultHosts.client):9107,rcvbuf=4096'")
            let echoed = await onPOSIXThread { peer.read(until: { $0.contains("ping") }, timeout: .seconds(10)) }
            try #require(echoed, "the client got no echo: \(peer.outputText)")
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            let started = ContinuousClock.now
            var results = endings.makeAsyncIterator()
            #expect(await results.next() == "write: timed out")
            // Closed after the idle timeout (counted from the last byte acknowledged, a sweep or
            // so before the link went dark), within a few sweeps.
            let closedAfter = ContinuousClock.now - started
            #expect(closedAfter >= idleTimeout / 2 && closedAfter < idleTimeout * 4, "closed after \(closedAfter)")
            server.shutdown()
            try await running.value
            try await FaultHosts.inject(nil)
            _ = peer
        }

        @Test func aResetInFlightEndsThePendingReadAndWrite() async throws {
            let peer = try await FaultHosts.startSilentServer(port: 9105)
            let connection = try await Connection.connect(to: address(9105), timeout: .seconds(5))
            let reading = await startPendingRead(on: connection)
            // The peer reads nothing: this write fills the windows and waits in flight.
            let big = [UInt8](repeating: 2, count: 32 * 1024 * 1024)
            let writing = Task { try await connection.write(big) }
            try await FaultHosts.inject(FaultHosts.resets(port: 9105))
            // The next window probe is answered with a reset.
            await expectTorusError(.connectionReset) { try await writing.value }
            await expectTorusError(.connectionReset) { try await reading.value }
            await connection.close()
            try await FaultHosts.inject(nil)
            _ = peer
        }

        @Test func aQueuedSendToAPeerThatWentSilentEndsAtItsWriteTimeout() async throws {
            let peer = try await FaultHosts.startEchoServer(port: 9106)
            let options = ConnectionOptions(writeTimeout: .milliseconds(500), sendQueueHighWaterMark: 64 * 1024 * 1024)
            let connection = try await Connection.connect(to: address(9106), timeout: .seconds(5), options: options)
            try await FaultHosts.inject(FaultHosts.blackHole, clientChains: FaultHosts.blackHoleFromServer)
            for _ in 0..<64 { try await connection.send([UInt8](repeating: 3, count: 256 * 1024)) }
            let started = ContinuousClock.now
            await expectTorusError(.timedOut) { try await connection.flush() }
            #expect(ContinuousClock.now - started < .seconds(5))
            // Nothing is held for a send that can no longer happen.
            #expect(await connection.queuedBytes == 0)
            await connection.close()
            try await FaultHosts.inject(nil)
            _ = peer
        }
    }
}
