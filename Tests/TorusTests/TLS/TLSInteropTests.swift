import Testing
import Torus
import TorusTLS

extension TorusTests {
    /// Torus's TLS client against an independent server: OpenSSL's own `s_server`, which does
    /// its socket I/O itself.
    @Suite(.noDescriptorLeaks)
    struct TLSInteropTests {
        /// Starts `openssl s_server -www` (one connection) with `arguments` and returns it with
        /// its port.
        func startOpenSSLServer(_ arguments: [String]) async throws -> (ChildProcess, UInt16) {
            let directory = try await TestCertificates.shared.path()
            let server = try ChildProcess("/usr/bin/openssl", [
                "s_server", "-accept", "0", "-naccept", "1", "-www",
                "-cert", directory + "/server.pem", "-key", directory + "/server.key",
            ] + arguments)
            let started = await onPOSIXThread { server.read(until: { $0.contains("ACCEPT") && $0.hasSuffix("\n") }, timeout: .seconds(20)) }
            // "ACCEPT [::]:PORT" or "ACCEPT 0.0.0.0:PORT".
            guard started, let line = server.outputText.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
                  let port = line.split(separator: ":").last.flatMap({ UInt16($0) }) else {
                throw TestFailure("openssl s_server did not start: \(server.outputText) \(server.errorText)")
            }
            return (server, port)
        }

        @Test(arguments: [TLSConfiguration.Version.tls12, .tls13])
        func aTorusClientGetsAPageFromOpenSSLsServer(version: TLSConfiguration.Version) async throws {
            let (server, port) = try await startOpenSSLServer([version == .tls12 ? "-tls1_2" : "-tls1_3"])
            let client = try await TestCertificates.shared.clientContext()
            let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
            #expect(await stream.protocolVersion == version)
            try await stream.write("GET / HTTP/1.0\r\n\r\n")
            let page = String(decoding: try await stream.readToEnd(), as: UTF8.self)
            #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
            // s_server's page shows the protocol it spoke.
            #expect(page.contains(version == .tls12 ? "TLSv1.2" : "TLSv1.3"))
            await stream.close()
            let termination = await onPOSIXThread { server.finish(timeout: .seconds(20)) }
            #expect(termination == .exited(0), "\(server.errorText)")
        }

        @Test func aTorusClientPresentsItsCertificateToOpenSSLsServer() async throws {
            let directory = try await TestCertificates.shared.path()
            let (server, port) = try await startOpenSSLServer(["-Verify", "1", "-CAfile", directory + "/ca.pem", "-verify_return_error"])
            let identity = try await TestCertificates.shared.identity("client")
            let client = try await TestCertificates.shared.clientContext { $0.identity = identity }
            let stream = try await TLSStream.connect(host: "localhost", port: port, context: client)
            try await stream.write("GET / HTTP/1.0\r\n\r\n")
            let page = String(decoding: try await stream.readToEnd(), as: UTF8.self)
            #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
            #expect(page.contains("Torus Test Client"), "the page names the client certificate: \(page.suffix(600))")
            await stream.close()
            _ = await onPOSIXThread { server.finish(timeout: .seconds(20)) }
        }
    }
}
