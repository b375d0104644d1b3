import Testing
import Torus
import TorusTLS
import MetricsTestKit

extension TorusTests {
    /// TLS between a Torus client and a Torus server: versions, data both ways, close_notify,
    /// what the handshake agreed.
    @Suite(.noDescriptorLeaks)
    struct TLSStreamTests {
        @Test func aClientAndAServerExchangeLinesOverTLS13() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            let client = try await certificates.clientContext()
            try await withTLSServer(server) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                #expect(await stream.protocolVersion == .tls13)
                #expect(await stream.peerCertificateSubject == "CN=localhost")
                try await stream.send("hello\nworld\n")
                let reader = BufferedReader(stream)
                #expect(try await reader.readLine() == "hello")
                #expect(try await reader.readLine() == "world")
                await stream.close()
            }
        }

        @Test func aMaximumOfTLS12GivesTLS12() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            let client = try await certificates.clientContext { $0.maximumVersion = .tls12 }
            try await withTLSServer(server) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                #expect(await stream.protocolVersion == .tls12)
                try await stream.send("over 1.2\n")
                #expect(try await BufferedReader(stream).readLine() == "over 1.2")
                await stream.close()
            }
        }

        @Test func megabytesEchoIntactInBothDirections() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            let client = try await certificates.clientContext()
            try await withTLSServer(server, handler: echoBytes) { port in
                let stream = try await TLSStream.connect(host: "127.0.0.1", port: port, context: client)
                let payload = randomBytes(3 * 1024 * 1024 + 17)
                let reading = Task { try await stream.readToEnd() }
                // One large write, then queued sends of odd sizes, then close_notify.
                try await stream.write(Array(payload[..<(1024 * 1024)]))
                var offset = 1024 * 1024
                var size = 1
                while offset < payload.count {
                    let end = min(payload.count, offset + size)
                    try await stream.send(Array(payload[offset..<end]))
                    offset = end
                    size = size * 3 % 70_001 + 1
                }
                try await stream.shutdown(.write)
                let echoed = try await reading.value
                expectSameBytes(echoed, payload)
                await stream.close()
            }
        }

        @Test func theServersCloseNotifyIsEndOfStreamForTheClient() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            let client = try await certificates.clientContext()
            try await withTLSServer(server, handler: { stream in
                try await stream.write("bye\n")
                // Returning: the server sends close_notify and closes.
            }) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                #expect(try await stream.readToEnd() == Array("bye\n".utf8))
                #expect(try await stream.receive() == nil)
                await stream.close()
            }
        }

        @Test func aConnectionClosedWithoutCloseNotifyIsTruncated() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            let client = try await certificates.clientContext()
            try await withTLSServer(server, handler: { stream in
                try await stream.write("partial")
                // Straight to the socket: no close_notify.
                await stream.connection.close()
            }) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                let first = try await stream.receive()
                #expect(first?.array == Array("partial".utf8))
                let error = await expectTLSError(.truncated) { try await stream.receive()?.count }
                #expect(error?.description.contains("close_notify") == true)
                await stream.close()
            }
        }

        @Test func alpnAgreesOnTheServersFirstChoiceTheClientOffers() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext { $0.applicationProtocols = ["h2", "http/1.1"] }
            let client = try await certificates.clientContext { $0.applicationProtocols = ["http/1.1", "h2"] }
            try await withTLSServer(server, handler: { stream in
                try await stream.write((stream.applicationProtocol ?? "none") + "\n")
            }) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                #expect(await stream.applicationProtocol == "h2")
                #expect(try await BufferedReader(stream).readLine() == "h2")
                await stream.close()
            }
        }

        @Test func aClientOfferingNoProtocolTheServerHasFailsTheHandshake() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext { $0.applicationProtocols = ["http/1.1"] }
            let client = try await certificates.clientContext { $0.applicationProtocols = ["imap"] }
            try await withTLSServer(server) { port in
                let error = await expectTLSError(.noSharedApplicationProtocol) {
                    try await TLSStream.connect(host: "localhost", port: port, context: client)
                }
                #expect(error?.alert == "no application protocol")
            }
        }

        @Test func theServerPicksItsCertificateByTheNameTheClientSends() async throws {
            let certificates = TestCertificates.shared
            let other = try await certificates.identity("other")
            let server = try await certificates.serverContext { $0.identitiesByServerName = ["*.other.test": other, "other.test": other] }
            let client = try await certificates.clientContext()
            try await withTLSServer(server, handler: { stream in
                try await stream.write((stream.serverName ?? "none") + "\n")
            }) { port in
                for name in ["other.test", "api.other.test", "localhost"] {
                    let stream = try await TLSStream.connect(host: "127.0.0.1", port: port, context: client, serverName: name)
                    #expect(await stream.peerCertificateSubject == (name == "localhost" ? "CN=localhost" : "CN=other.test"))
                    #expect(try await BufferedReader(stream).readLine() == name)
                    await stream.close()
                }
            }
        }

        @Test func aSecondConnectionWithTheSameContextResumesTheSession() async throws {
            let certificates = TestCertificates.shared
            let server = try await certificates.serverContext()
            for version in [TLSConfiguration.Version.tls13, .tls12] {
                let client = try await certificates.clientContext { $0.maximumVersion = version }
                try await withTLSServer(server) { port in
                    for round in 0..<3 {
                        let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                        // Reading lets a TLS 1.3 client take the tickets that follow the handshake.
                        try await stream.send("ping\n")
                        #expect(try await BufferedReader(stream).readLine() == "ping")
                        #expect(await stream.isResumed == (round > 0), "\(version), round \(round)")
                        await stream.close()
                    }
                }
            }
        }

        @Test func mutualTLSAcceptsATrustedClientCertificate() async throws {
            let certificates = TestCertificates.shared
            let ca = try await certificates.pem("ca.pem")
            let server = try await certificates.serverContext {
                $0.clientAuthentication = .required
                $0.trustRoots = .certificates(ca)
            }
            let identity = try await certificates.identity("client")
            let client = try await certificates.clientContext { $0.identity = identity }
            try await withTLSServer(server, handler: { stream in
                try await stream.write((stream.peerCertificateSubject ?? "none") + "\n")
            }) { port in
                let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
                #expect(try await BufferedReader(stream).readLine() == "CN=Torus Test Client")
                await stream.close()
            }
        }
    
        @Test func aGracefulShutdownEndsAnIdleTLSHandlerWithCloseNotify() async throws {
            let certificates = TestCertificates.shared
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener)
            let context = try await certificates.serverContext()
            let serving = Task { try await server.run(tls: context, echoLines) }
            let client = try await certificates.clientContext()
            let stream = try await TLSStream.connect(host: "localhost", port: listener.localAddress.port!, context: client)
            try await stream.send("one\n")
            let reader = BufferedReader(stream)
            #expect(try await reader.readLine() == "one")
            // The handler waits in its read; the drain ends that read, the handler returns,
            // and the stream closes with close_notify, long before the grace period.
            let started = ContinuousClock.now
            server.shutdown(gracePeriod: .seconds(30))
            #expect(try await reader.readLine() == nil)
            try await serving.value
            #expect(ContinuousClock.now - started < .seconds(10))
            await stream.close()
        }
    
        @Test func aCancelledReadEndsWithCancellationErrorAndTheStreamReadsOn() async throws {
            let certificates = TestCertificates.shared
            let outcome = try await handshake(server: try await certificates.serverContext(),
                                              client: try await certificates.clientContext())
            let client = outcome.clientStream
            let reading = Task { try await client.receive()?.count }
            // The read is waiting once a later call on the same loop has run (the loop runs
            // jobs in order), as startPendingRead does for connections.
            for _ in 0..<4 { _ = await client.isEstablished }
            reading.cancel()
            await #expect(throws: CancellationError.self) { try await reading.value }
            // Nothing was lost: the next read gets what the server writes now.
            try await outcome.serverStream.write("after\n")
            #expect(try await BufferedReader(client).readLine() == "after")
            await client.close()
            await outcome.serverStream.close()
        }

        @Test func aWriteThatTimesOutBreaksTheWriteSideForGood() async throws {
            let certificates = TestCertificates.shared
            let outcome = try await handshake(server: try await certificates.serverContext(),
                                              client: try await certificates.clientContext())
            // The server never reads: 32 MiB cannot all be accepted in 200 ms.
            let big = [UInt8](repeating: 0x61, count: 32 * 1024 * 1024)
            let first = await torusError { try await outcome.clientStream.write(big, timeout: .milliseconds(200)) }
            #expect(first?.kind == .timedOut, "\(String(describing: first))")
            // A TLS record stream cannot skip a record: every later write fails the same way.
            let second = await torusError { try await outcome.clientStream.write("more", timeout: .seconds(1)) }
            #expect(second?.kind == .timedOut)
            let third = await torusError { try await outcome.clientStream.send("more") }
            #expect(third?.kind == .timedOut)
            await outcome.clientStream.close()
            await outcome.serverStream.close()
        }
    
        @Test func aFailedHandshakeIsCountedByKindAndTheServerServesOn() async throws {
            let certificates = TestCertificates.shared
            let metrics = TestMetrics()
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(metricsFactory: metrics))
            let context = try await certificates.serverContext()
            let serving = Task { try await server.run(tls: context, echoLines) }
            let port = listener.localAddress.port!
            // A client that does not trust the server: it sends an alert and leaves.
            let untrusting = try TLSContext(.client())
            await expectTLSError(.untrustedCertificate) {
                try await TLSStream.connect(host: "localhost", port: port, context: untrusting)
            }
            // Wait for that handler to end (no timer), then check the server still serves.
            while server.connectionCount > 0 { await Task.yield() }
            let stream = try await TLSStream.connect(host: "localhost", port: port, context: try await certificates.clientContext())
            try await stream.send("ok\n")
            #expect(try await BufferedReader(stream).readLine() == "ok")
            await stream.close()
            server.shutdown()
            try await serving.value
            let dimensions = [("listener", "\(listener.localAddress)"), ("kind", "tls: alert received")]
            #expect(try metrics.expectCounter("torus.connection.errors", dimensions).totalValue == 1)
        }
    }
}
