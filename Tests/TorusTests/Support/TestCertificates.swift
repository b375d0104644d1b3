import Testing
import TorusTLS
#if canImport(Glibc)
import Glibc
#endif

/// The throwaway certificates of `scripts/make-test-certs.sh`, made once per test run in a
/// temporary directory (no private key is committed).
actor TestCertificates {
    static let shared = TestCertificates()
    private var directory: String?

    /// The directory holding the certificates, made at the first call.
    func path() async throws -> String {
        if let directory { return directory }
        var template = Array("/tmp/torus-test-certs.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError("mkdtemp") }
        let directory = String(cString: made)
        let script = repositoryRoot() + "/scripts/make-test-certs.sh"
        let termination = await onPOSIXThread { () -> Result<ChildProcess.Termination?, any Error> in
            Result { try ChildProcess("/bin/bash", [script, directory]).finish(timeout: .seconds(60)) }
        }
        guard case .success(.exited(0)) = termination else {
            throw TestFailure("scripts/make-test-certs.sh failed: \(termination)")
        }
        self.directory = directory
        return directory
    }

    /// A file of the directory, as PEM for a configuration.
    func pem(_ name: String) async throws -> TLSConfiguration.PEM {
        .file(try await path() + "/" + name)
    }

    /// The identity in `name`.pem and `name`.key.
    func identity(_ name: String) async throws -> TLSConfiguration.Identity {
        TLSConfiguration.Identity(certificateChain: try await pem(name + ".pem"), privateKey: try await pem(name + ".key"))
    }

    /// A server context for `name` (server, other, expired, …), changed by `configure`.
    func serverContext(_ name: String = "server", _ configure: (inout TLSConfiguration) -> Void = { _ in }) async throws -> TLSContext {
        var configuration = TLSConfiguration(role: .server, identity: try await identity(name))
        configure(&configuration)
        return try TLSContext(configuration)
    }

    /// A client context trusting the test CA, changed by `configure`.
    func clientContext(_ configure: (inout TLSConfiguration) -> Void = { _ in }) async throws -> TLSContext {
        var configuration = TLSConfiguration.client(trustRoots: .certificates(try await pem("ca.pem")))
        configure(&configuration)
        return try TLSContext(configuration)
    }
}

/// The repository's root directory, from this file's path.
func repositoryRoot(file: String = #filePath) -> String {
    // Tests/TorusTests/Support/TestCertificates.swift
    file.split(separator: "/", omittingEmptySubsequences: false).dropLast(4).joined(separator: "/")
}
