import CFuzzTLS
import TorusTLS
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway identity: an ECDSA P-256 key and a self-signed certificate for `names`
/// (comma-separated DNS names), made with OpenSSL at start-up so that no key is committed.
func throwawayIdentity(_ names: String) -> (identity: TLSConfiguration.Identity, certificate: [UInt8]) {
    var certificate: UnsafeMutablePointer<CChar>?
    var key: UnsafeMutablePointer<CChar>?
    guard fuzz_tls_make_identity(names, &certificate, &key) == 1, let certificate, let key else {
        fatalError("FuzzTLSRecords: OpenSSL could not make a throwaway certificate")
    }
    defer {
        free(certificate)
        free(key)
    }
    let certificatePEM = Array(String(cString: certificate).utf8)
    let keyPEM = Array(String(cString: key).utf8)
    return (TLSConfiguration.Identity(certificateChain: .bytes(certificatePEM), privateKey: .bytes(keyPEM)), certificatePEM)
}

/// The TLS contexts every run shares, made once at start-up as a server makes its own (an
/// SSL_CTX per configuration; a run makes only sessions). No context keeps client sessions,
/// so that a run does not depend on the runs before it.
struct FuzzContexts: Sendable {
    static let shared = FuzzContexts()

    /// A client configuration and the name it asks for (SNI) and verifies.
    struct Client: Sendable {
        let context: TLSContext
        let serverName: String

        /// The servers it may meet. A TLS 1.2 handshake with a server that resumes sessions
        /// leaves the session in the server's cache, which outlives the run: the run would
        /// depend on the ones before, and libFuzzer would scan for leaks after each.
        var servers: [TLSContext] {
            let all = FuzzContexts.shared.servers
            return context.configuration.maximumVersion == .tls12 ? all.filter { !$0.configuration.sessionResumption } : all
        }
    }

    /// All have a second identity for `*.fuzz.test` (SNI). [0]: ALPN and session tickets.
    /// [1]: ALPN, no resumption. [2]: asks for client certificates (optional), no resumption.
    let servers: [TLSContext]
    /// TLS 1.3 and 1.2 with each kind of record protection (AES-GCM, ChaCha20-Poly1305, and
    /// CBC with HMAC for 1.2), SNI and ALPN, and client certificates.
    let clients: [Client]

    private init() {
        let localhost = throwawayIdentity("localhost")
        let wildcard = throwawayIdentity("*.fuzz.test")
        let trusted = TLSConfiguration.TrustRoots.certificates(.bytes(localhost.certificate + wildcard.certificate))

        func server(_ configure: (inout TLSConfiguration) -> Void) -> TLSContext {
            var configuration = TLSConfiguration(role: .server, identity: localhost.identity)
            configuration.identitiesByServerName = ["*.fuzz.test": wildcard.identity]
            configure(&configuration)
            return Self.context(configuration)
        }
        servers = [
            server { $0.applicationProtocols = ["h2", "http/1.1"] },
            server { $0.applicationProtocols = ["h2", "http/1.1"]; $0.sessionResumption = false },
            server { $0.clientAuthentication = .optional; $0.trustRoots = trusted; $0.sessionResumption = false },
        ]

        func client(_ serverName: String = "localhost", _ configure: (inout TLSConfiguration) -> Void = { _ in }) -> Client {
            var configuration = TLSConfiguration.client(trustRoots: trusted)
            configuration.sessionResumption = false
            configure(&configuration)
            return Client(context: Self.context(configuration), serverName: serverName)
        }
        clients = [
            client(),
            client { $0.tls13CipherSuites = "TLS_CHACHA20_POLY1305_SHA256" },
            client { $0.maximumVersion = .tls12 },
            client { $0.maximumVersion = .tls12; $0.cipherSuites = "ECDHE-ECDSA-CHACHA20-POLY1305" },
            client { $0.maximumVersion = .tls12; $0.cipherSuites = "ECDHE-ECDSA-AES128-SHA256" },
            client("api.fuzz.test") { $0.applicationProtocols = ["http/1.1", "h2"] },
            client { $0.identity = localhost.identity },
            client { $0.maximumVersion = .tls12; $0.identity = localhost.identity },
        ]
    }

    private static func context(_ configuration: TLSConfiguration) -> TLSContext {
        do {
            return try TLSContext(configuration)
        } catch {
            fatalError("FuzzTLSRecords: \(error)")
        }
    }
}

/// Error kinds that no peer's bytes can cause: a session that ends with one is a bug.
let impossibleKinds: [TLSError.Kind] = [.invalidConfiguration, .keyMismatch, .handshakeTimedOut, .streamClosed]

/// Checks the error a session failed with: of a kind a peer can cause, and naming nothing it
/// does not know (a server that rejected a client's certificate once said `issued by "", is
/// not trusted`; Corpus/FuzzTLSRecords/hostile-certificate12 is that client).
func checkError(_ error: TLSError, of who: String) {
    require(!impossibleKinds.contains(error.kind), "\(who) failed with \(error)")
    require(!error.description.contains("\"\""), "\(who)'s error names an empty name: \(error)")
}
