import Testing
import Torus
import TorusTLS

extension TorusTests {
    /// Every way a TLS handshake or configuration goes wrong ends with an error that says
    /// which, on the side that found it.
    @Suite(.noDescriptorLeaks)
    struct TLSErrorTests {
        let certificates = TestCertificates.shared

        func closeBoth(_ outcome: HandshakeOutcome) async {
            await outcome.clientStream.close()
            await outcome.serverStream.close()
        }

        @Test func aCertificateFromAnUntrustedCANamesItsIssuer() async throws {
            let outcome = try await handshake(server: try await certificates.serverContext("untrusted"),
                                              client: try await certificates.clientContext())
            let error = expectTLSError(outcome.client, .untrustedCertificate)
            #expect(error?.description.contains("CN=Untrusted Test CA") == true, "\(String(describing: error))")
            // The client said why, and the server names the alert.
            let serverError = expectTLSError(outcome.server, .alertReceived)
            #expect(serverError?.alert == "unknown CA", "\(String(describing: serverError))")
            await closeBoth(outcome)
        }

        @Test func theSystemTrustStoreDoesNotTrustTheTestCA() async throws {
            let client = try TLSContext(.client())
            let outcome = try await handshake(server: try await certificates.serverContext(), client: client)
            let error = expectTLSError(outcome.client, .untrustedCertificate)
            #expect(error?.description.contains("CN=Torus Test CA") == true, "\(String(describing: error))")
            await closeBoth(outcome)
        }

        @Test func aHostnameMismatchNamesBothNames() async throws {
            let outcome = try await handshake(server: try await certificates.serverContext(),
                                              client: try await certificates.clientContext(), serverName: "example.com")
            let error = expectTLSError(outcome.client, .hostnameMismatch)
            let text = error?.description ?? ""
            #expect(text.contains("example.com") && text.contains("localhost") && text.contains("127.0.0.1"), "\(text)")
            await closeBoth(outcome)
        }

        @Test func anAddressMissingFromTheCertificateIsAMismatch() async throws {
            // No server name: the certificate must hold the address connected to.
            let outcome = try await handshake(server: try await certificates.serverContext("other"),
                                              client: try await certificates.clientContext(), serverName: nil)
            let error = expectTLSError(outcome.client, .hostnameMismatch)
            let text = error?.description ?? ""
            #expect(text.contains("127.0.0.1") && text.contains("other.test"), "\(text)")
            await closeBoth(outcome)
        }

        @Test func expiredAndNotYetValidCertificatesAreRejected() async throws {
            let expired = try await handshake(server: try await certificates.serverContext("expired"),
                                              client: try await certificates.clientContext())
            expectTLSError(expired.client, .certificateExpired)
            await closeBoth(expired)
            let future = try await handshake(server: try await certificates.serverContext("future"),
                                             client: try await certificates.clientContext())
            expectTLSError(future.client, .certificateNotYetValid)
            await closeBoth(future)
        }

        @Test func withoutVerificationAnyCertificateIsAccepted() async throws {
            let client = try await certificates.clientContext { $0.verification = .none }
            let outcome = try await handshake(server: try await certificates.serverContext("untrusted"), client: client, serverName: "example.com")
            #expect(outcome.client == nil && outcome.server == nil)
            await closeBoth(outcome)
        }

        @Test func aKeyThatIsNotTheCertificatesFailsWhenTheContextIsMade() async throws {
            let chain = try await certificates.pem("server.pem")
            let otherKey = try await certificates.pem("other.key")
            let error = await expectTLSError(.keyMismatch) {
                try TLSContext(.server(certificateChain: chain, privateKey: otherKey))
            }
            #expect(error?.step == .configuration)
        }

        @Test func unreadableOrInvalidFilesFailWhenTheContextIsMade() async throws {
            let key = try await certificates.pem("server.key")
            let missing = await expectTLSError(.invalidConfiguration) {
                try TLSContext(.server(certificateChain: .file("/nonexistent/server.pem"), privateKey: key))
            }
            #expect(missing?.description.contains("/nonexistent/server.pem") == true)
            #expect(missing?.description.contains("No such file") == true)
            await expectTLSError(.invalidConfiguration) {
                try TLSContext(.server(certificateChain: .string("not a certificate"), privateKey: key))
            }
            await expectTLSError(.invalidConfiguration) {
                try TLSContext(TLSConfiguration(role: .server))
            }
            await expectTLSError(.invalidConfiguration) {
                try await certificates.clientContext { $0.cipherSuites = "NO-SUCH-CIPHER" }
            }
        }

        @Test func noSharedVersionIsReportedOnBothSides() async throws {
            let outcome = try await handshake(server: try await certificates.serverContext { $0.minimumVersion = .tls13 },
                                              client: try await certificates.clientContext { $0.maximumVersion = .tls12 })
            expectTLSError(outcome.server, .noSharedVersion)
            let error = expectTLSError(outcome.client, .noSharedVersion)
            #expect(error?.alert == "protocol version")
            await closeBoth(outcome)
        }

        @Test func noSharedCipherIsReportedOnBothSides() async throws {
            let outcome = try await handshake(
                server: try await certificates.serverContext {
                    $0.maximumVersion = .tls12
                    $0.cipherSuites = "ECDHE-ECDSA-AES128-GCM-SHA256"
                },
                client: try await certificates.clientContext {
                    $0.maximumVersion = .tls12
                    $0.cipherSuites = "ECDHE-ECDSA-CHACHA20-POLY1305"
                })
            expectTLSError(outcome.server, .noSharedCipher)
            let error = expectTLSError(outcome.client, .alertReceived)
            #expect(error?.alert == "handshake failure")
            await closeBoth(outcome)
        }

        @Test func aRequiredClientCertificateThatIsMissingFailsTheHandshake() async throws {
            let ca = try await certificates.pem("ca.pem")
            let outcome = try await handshake(
                server: try await certificates.serverContext {
                    $0.clientAuthentication = .required
                    $0.trustRoots = .certificates(ca)
                },
                client: try await certificates.clientContext())
            expectTLSError(outcome.server, .certificateRequired)
            // TLS 1.3: the client's handshake is over before the server checks; the client
            // learns it from the alert, at its first read.
            if outcome.client == nil {
                let error = await expectTLSError(.alertReceived) { try await outcome.clientStream.receive()?.count }
                #expect(error?.alert == "certificate required")
            } else {
                expectTLSError(outcome.client, .alertReceived)
            }
            await closeBoth(outcome)
        }

        @Test func anUntrustedClientCertificateFailsTheServersHandshake() async throws {
            let ca = try await certificates.pem("ca.pem")
            let untrusted = try await certificates.identity("untrusted")
            let outcome = try await handshake(
                server: try await certificates.serverContext {
                    $0.clientAuthentication = .required
                    $0.trustRoots = .certificates(ca)
                },
                client: try await certificates.clientContext { $0.identity = untrusted })
            let error = expectTLSError(outcome.server, .untrustedCertificate)
            // OpenSSL keeps no rejected client certificate to name: the error says so plainly,
            // without empty names (it once read `issued by "", is not trusted`).
            #expect(error?.description.contains("\"\"") == false, "\(String(describing: error))")
            if outcome.client == nil {
                await expectTLSError(.alertReceived) { try await outcome.clientStream.receive()?.count }
            } else {
                expectTLSError(outcome.client, .alertReceived)
            }
            await closeBoth(outcome)
        }

        @Test func aPlaintextClientOnATLSPortIsNotTLS() async throws {
            let (client, server) = try await connectedPair()
            let stream = try TLSStream(serverOn: server, context: try await certificates.serverContext())
            try await client.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let error = await expectTLSError(.notTLS) { try await stream.handshake(timeout: .seconds(5)) }
            #expect(error?.description.contains("plaintext HTTP") == true, "\(String(describing: error))")
            await stream.close()
            await client.close()
        }

        @Test func aTLSClientOnAPlaintextPortIsNotTLS() async throws {
            let (client, server) = try await connectedPair()
            let stream = try TLSStream(clientOn: client, context: try await certificates.clientContext(), serverName: "localhost")
            // What a plaintext server says to a ClientHello.
            try await server.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await expectTLSError(.notTLS) { try await stream.handshake(timeout: .seconds(5)) }
            await stream.close()
            await server.close()
        }

        @Test func aSilentClientMeetsTheHandshakeTimeout() async throws {
            let (client, server) = try await connectedPair()
            let stream = try TLSStream(serverOn: server, context: try await certificates.serverContext())
            let started = ContinuousClock.now
            let error = await expectTLSError(.handshakeTimedOut) { try await stream.handshake(timeout: .milliseconds(200)) }
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(error?.description.contains("0.2 seconds") == true, "\(String(describing: error))")
            // A failed handshake stays failed.
            await expectTLSError(.handshakeTimedOut) { try await stream.receive()?.count }
            await stream.close()
            await client.close()
        }

        @Test func aServerClosesAConnectionWhoseHandshakeTimesOut() async throws {
            try await withTLSServer(try await certificates.serverContext(), handshakeTimeout: .milliseconds(200)) { port in
                let client = try await Connection.connect(to: .ipv4(.loopback, port: port))
                // Silent: the server gives up and closes; the read ends, well before its timeout.
                let bytes = try await client.readToEnd()
                #expect(bytes.isEmpty)
                await client.close()
            }
        }

        @Test func aPeerClosingDuringTheHandshakeIsTruncated() async throws {
            let (client, server) = try await connectedPair()
            let stream = try TLSStream(serverOn: server, context: try await certificates.serverContext())
            try await client.shutdown(.write)
            let error = await expectTLSError(.truncated) { try await stream.handshake(timeout: .seconds(5)) }
            #expect(error?.description.contains("during the handshake") == true)
            await stream.close()
            await client.close()
        }

        @Test func aStreamNeedsAContextOfItsRole() async throws {
            let (client, server) = try await connectedPair()
            let serverContext = try await certificates.serverContext()
            await expectTLSError(.invalidConfiguration) { try TLSStream(clientOn: client, context: serverContext) }
            let clientContext = try await certificates.clientContext()
            await expectTLSError(.invalidConfiguration) { try TLSStream(serverOn: server, context: clientContext) }
            await client.close()
            await server.close()
        }
    }
}
