import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Faults across a real link (a veth pair between network namespaces), injected by
    /// nftables where packets arrive: a peer gone silent, a connect into a black hole,
    /// dead-peer detection by keep-alive and TCP_USER_TIMEOUT, resets in flight.
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
