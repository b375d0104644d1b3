import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Torus client against Torus echo server: every address family, a large payload in full
    /// duplex, and many clients at once.
    @Suite(.noDescriptorLeaks)
    struct EchoTests {
        /// Sends `payload`, shuts the write side, and returns everything echoed until end of
        /// stream (reading concurrently with writing).
        private static func roundTrip(_ payload: [UInt8], to address: SocketAddress) async throws -> [UInt8] {
            let connection = try await Connection.connect(to: address)
            do {
                async let echoed = connection.readToEnd()
                try await connection.write(payload)
                try await connection.shutdown(.write)
                let result = try await echoed
                await connection.close()
                return result
            } catch {
                await connection.close()
                throw error
            }
        }

        /// Reads exactly `count` bytes straight into one buffer with `read(into:)`, no per-chunk
        /// copies. Isolated to the connection, so the buffer never crosses an isolation boundary.
        private static func read(_ count: Int, from connection: isolated Connection) async throws -> [UInt8] {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
            defer { buffer.deallocate() }
            var filled = 0
            while filled < count {
                let end = min(count, filled + 256 * 1024)
                let read = try await connection.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<end]))
                guard read > 0 else { throw TestFailure("echo ended after \(filled) of \(count) bytes") }
                filled += read
            }
            return Array(UnsafeRawBufferPointer(buffer))
        }

        @Test func echoRoundTripOverIPv4() async throws {
            let payload = randomBytes(100_000)
            let echoed = try await withEchoServer(on: .ipv4(.loopback, port: 0)) { address in
                #expect(address.port != 0)
                return try await Self.roundTrip(payload, to: address)
            }
            expectSameBytes(echoed, payload)
        }

        @Test func echoRoundTripOverIPv6() async throws {
            let payload = randomBytes(100_000)
            let echoed = try await withEchoServer(on: .ipv6(.loopback, port: 0)) { address in
                guard case .ipv6(let host, _, _) = address else {
                    Issue.record("listener bound to [::1] reports \(address)")
                    return [UInt8]()
                }
                #expect(host == .loopback)
                return try await Self.roundTrip(payload, to: address)
            }
            expectSameBytes(echoed, payload)
        }

        @Test func echoRoundTripOverUnixDomainSocket() async throws {
            let payload = randomBytes(100_000)
            try await withTemporaryDirectory { directory in
                let path = directory + "/echo.sock"
                let echoed = try await withEchoServer(on: .unix(path: path)) { address in
                    #expect(address == .unix(path: path))
                    return try await Self.roundTrip(payload, to: address)
                }
                expectSameBytes(echoed, payload)
                // Closing the listener removes its socket file.
                #expect(access(path, F_OK) != 0)
            }
        }

        @Test func echoRoundTripWithHostNameConnect() async throws {
            let echoed = try await withEchoServer { address in
                let connection = try await Connection.connect(host: "localhost", port: address.port!)
                try await connection.write("hello, localhost")
                try await connection.shutdown(.write)
                let echoed = try await connection.readToEnd()
                await connection.close()
                return echoed
            }
            #expect(String(decoding: echoed, as: UTF8.self) == "hello, localhost")
        }

        @Test func sixteenMebibytesEchoWhileStillBeingWritten() async throws {
            let count = 16 << 20
            let seed = UInt64.random(in: .min ... .max)
            let payload = randomBytes(count, seed: seed)
            let echoed = try await withEchoServer { address in
                let connection = try await Connection.connect(to: address)
                do {
                    // Full duplex: the echo must be read while the payload is still being
                    // written, or both sides' buffers fill and everything stalls.
                    let received = try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                        group.addTask {
                            try await connection.write(payload)
                            return nil
                        }
                        group.addTask {
                            try await Self.read(count, from: connection)
                        }
                        var received: [UInt8] = []
                        for try await result in group {
                            if let result { received = result }
                        }
                        return received
                    }
                    // Nothing more than the payload comes back.
                    try await connection.shutdown(.write)
                    #expect(try await connection.read() == nil)
                    await connection.close()
                    return received
                } catch {
                    await connection.close()
                    throw error
                }
            }
            if let difference = difference(echoed, payload) {
                Issue.record("16 MiB echo (seed \(seed)) differs: \(difference)")
            }
        }

        @Test func fiveHundredConcurrentClientsEachGetTheirOwnEcho() async throws {
            let clientCount = 500
            let failures = try await withEchoServer { address in
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for client in 0..<clientCount {
                        group.addTask {
                            let payload = randomBytes(1024 + client * 13)
                            let connection = try await Connection.connect(to: address)
                            do {
                                try await connection.write(payload)
                                try await connection.shutdown(.write)
                                let echoed = try await connection.readToEnd()
                                await connection.close()
                                return difference(echoed, payload).map { "client \(client): \($0)" }
                            } catch {
                                await connection.close()
                                throw error
                            }
                        }
                    }
                    var failures: [String] = []
                    for try await failure in group {
                        if let failure { failures.append(failure) }
                    }
                    return failures
                }
            }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
        }
    }
}
