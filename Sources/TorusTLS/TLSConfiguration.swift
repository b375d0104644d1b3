/// What a TLS server or client is and trusts: its certificate and key, the certificates it
/// trusts, the protocol versions, application protocols and cipher suites it accepts.
///
/// A configuration is a plain value; a ``TLSContext`` made from it checks it (files are read,
/// keys matched to certificates) and is what connections use.
///
/// ```swift
/// let server = try TLSContext(.server(
///     certificateChain: .file("server.pem"), privateKey: .file("server.key")))
/// let client = try TLSContext(.client(trustRoots: .certificates(.file("ca.pem"))))
/// ```
public struct TLSConfiguration: Sendable {
    /// Which end of the handshake a context serves.
    public enum Role: Sendable, Hashable {
        /// Accepts handshakes: has a certificate, may ask clients for theirs.
        case server
        /// Starts handshakes and verifies the server.
        case client
    }

    /// A TLS protocol version.
    public enum Version: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// TLS 1.2 (RFC 5246).
        case tls12
        /// TLS 1.3 (RFC 8446).
        case tls13

        /// The version's name, as in `TLS 1.3`.
        public var description: String {
            switch self {
            case .tls12: "TLS 1.2"
            case .tls13: "TLS 1.3"
            }
        }
    }

    /// Where PEM text comes from: a file, read when the context is made, or bytes in memory.
    public enum PEM: Sendable, Hashable {
        /// The PEM file at `path`.
        case file(String)
        /// PEM text already in memory.
        case bytes([UInt8])

        /// PEM text in a string.
        public static func string(_ text: String) -> PEM { .bytes(Array(text.utf8)) }
    }

    /// A certificate chain (leaf first, then intermediates) and the private key of its leaf.
    public struct Identity: Sendable, Hashable {
        /// The certificates, leaf first.
        public var certificateChain: PEM
        /// The leaf's private key (not encrypted).
        public var privateKey: PEM

        /// An identity from a certificate chain and its key.
        public init(certificateChain: PEM, privateKey: PEM) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// The certificates a peer's certificate must chain to.
    public enum TrustRoots: Sendable, Hashable {
        /// The system's trust store (`/etc/ssl/certs` on Debian and Ubuntu).
        case system
        /// Only these certificate authorities.
        case certificates(PEM)
    }

    /// How much of the peer's certificate is checked.
    public enum Verification: Sendable, Hashable {
        /// The chain to a trusted root, the validity dates and (on a client) that the
        /// certificate is for the host connected to: the default, and what production needs.
        case full
        /// The chain and dates, not the host name: for peers known by a certificate, not a name.
        case noHostnameVerification
        /// Nothing: any certificate, or none, is accepted. Only for tests against throwaway
        /// certificates: it gives up what TLS is for.
        case none
    }

    /// Whether a server asks clients for certificates (mutual TLS).
    public enum ClientAuthentication: Sendable, Hashable {
        /// Clients are not asked: the default.
        case none
        /// Clients are asked; one that sends a certificate must send a trusted one, one that
        /// sends none is served.
        case optional
        /// Clients must send a trusted certificate.
        case required
    }

    /// Which end this configuration is for.
    public var role: Role
    /// This side's certificate and key: required for a server, optional for a client (a client
    /// certificate for mutual TLS).
    public var identity: Identity?
    /// For a server: other identities by the name clients ask for (SNI). A key is a host name
    /// or `*.` and a domain (one label: `*.example.com` matches `api.example.com`); a client
    /// asking for a name that none matches, or for none, gets ``identity``.
    public var identitiesByServerName: [String: Identity]
    /// What peers' certificates must chain to (a client's server, a server's clients).
    public var trustRoots: TrustRoots
    /// How much of the peer's certificate is checked.
    public var verification: Verification
    /// For a server: whether clients are asked for certificates, checked against ``trustRoots``.
    public var clientAuthentication: ClientAuthentication
    /// The lowest protocol version accepted (TLS 1.2 by default; nothing below 1.2 is offered).
    public var minimumVersion: Version
    /// The highest protocol version accepted (TLS 1.3 by default).
    public var maximumVersion: Version
    /// Application protocols for ALPN, most preferred first (as in `["h2", "http/1.1"]`): a
    /// client offers them, a server picks the first of its own that the client offers. Empty:
    /// no ALPN.
    public var applicationProtocols: [String]
    /// TLS 1.2 cipher suites, in OpenSSL's cipher-list syntax; nil for OpenSSL's defaults
    /// (forward-secret AEAD suites first).
    public var cipherSuites: String?
    /// TLS 1.3 cipher suites, as in `TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384`; nil for
    /// OpenSSL's defaults.
    public var tls13CipherSuites: String?
    /// Session resumption: a server issues session tickets and a ``TLSContext`` used by
    /// clients keeps the latest session per server, so that the next connection to it skips
    /// the full handshake. On by default.
    public var sessionResumption: Bool

    /// A configuration with every setting given; ``server(certificateChain:privateKey:)`` and
    /// ``client(trustRoots:)`` are the usual starting points.
    public init(
        role: Role,
        identity: Identity? = nil,
        identitiesByServerName: [String: Identity] = [:],
        trustRoots: TrustRoots = .system,
        verification: Verification = .full,
        clientAuthentication: ClientAuthentication = .none,
        minimumVersion: Version = .tls12,
        maximumVersion: Version = .tls13,
        applicationProtocols: [String] = [],
        cipherSuites: String? = nil,
        tls13CipherSuites: String? = nil,
        sessionResumption: Bool = true
    ) {
        self.role = role
        self.identity = identity
        self.identitiesByServerName = identitiesByServerName
        self.trustRoots = trustRoots
        self.verification = verification
        self.clientAuthentication = clientAuthentication
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.applicationProtocols = applicationProtocols
        self.cipherSuites = cipherSuites
        self.tls13CipherSuites = tls13CipherSuites
        self.sessionResumption = sessionResumption
    }

    /// A server with this certificate chain (leaf first) and private key.
    public static func server(certificateChain: PEM, privateKey: PEM) -> TLSConfiguration {
        TLSConfiguration(role: .server, identity: Identity(certificateChain: certificateChain, privateKey: privateKey))
    }

    /// A client that verifies servers against `trustRoots` (the system's by default) and
    /// checks that their certificates are for the host it connects to.
    public static func client(trustRoots: TrustRoots = .system) -> TLSConfiguration {
        TLSConfiguration(role: .client, trustRoots: trustRoots)
    }
}
