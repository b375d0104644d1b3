public import Torus

/// The error TorusTLS throws when TLS itself fails: a certificate that is not trusted, a
/// handshake the peers cannot agree on, an alert from the peer, a stream cut short.
///
/// Errors of the connection underneath (a reset, a timed-out read) stay `TorusError`s, and
/// cancellation stays `CancellationError`. Match on ``kind``:
///
/// ```swift
/// do {
///     let stream = try await TLSStream.connect(host: "localhost", port: 8443, context: context)
/// } catch let error as TLSError where error.kind == .untrustedCertificate {
///     print(error)   // TLS handshake failed: untrusted certificate: "CN=localhost", issued by "CN=Test CA", is not trusted: ...
/// }
/// ```
public struct TLSError: Error, Hashable, Sendable, CustomStringConvertible, ConnectionEndingError {
    /// What went wrong.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A short name for the kind, as in `untrusted certificate`.
        public var description: String { name }

        /// The peer's certificate does not chain to a certificate this side trusts (the detail
        /// names its subject and issuer), or is otherwise rejected by verification.
        public static let untrustedCertificate = Kind("untrusted certificate")
        /// The peer's certificate is valid, but not for the name or address connected to (the
        /// detail names both).
        public static let hostnameMismatch = Kind("hostname mismatch")
        /// The peer's certificate has expired.
        public static let certificateExpired = Kind("certificate expired")
        /// The peer's certificate is not valid yet.
        public static let certificateNotYetValid = Kind("certificate not yet valid")
        /// A server asked for a client certificate and the client sent none.
        public static let certificateRequired = Kind("certificate required")
        /// The two sides have no protocol version in common (say, a TLS 1.3-only server and a
        /// TLS 1.2-only client).
        public static let noSharedVersion = Kind("no shared protocol version")
        /// The two sides have no cipher suite in common.
        public static let noSharedCipher = Kind("no shared cipher")
        /// The two sides have no application protocol (ALPN) in common.
        public static let noSharedApplicationProtocol = Kind("no shared application protocol")
        /// The peer ended the handshake or the stream with an alert (``TLSError/alert`` names it).
        public static let alertReceived = Kind("alert received")
        /// The peer does not speak TLS: a plaintext client on a TLS port, or a TLS client
        /// connected to a plaintext server.
        public static let notTLS = Kind("peer does not speak TLS")
        /// The handshake did not complete within its timeout.
        public static let handshakeTimedOut = Kind("handshake timed out")
        /// The peer closed the connection without a TLS close_notify: what was read may have
        /// been cut short by an attacker or a failure (also a close during the handshake).
        public static let truncated = Kind("truncated")
        /// The peer broke the protocol (a bad record, a renegotiation attempt, an oversized
        /// record, …); the detail says how.
        public static let protocolViolation = Kind("protocol violation")
        /// The private key does not belong to the certificate (found when the context is made).
        public static let keyMismatch = Kind("private key does not match certificate")
        /// A certificate, key or setting could not be used: an unreadable file, PEM that does
        /// not parse, an unknown cipher suite.
        public static let invalidConfiguration = Kind("invalid configuration")
        /// The stream was used after it failed or was closed.
        public static let streamClosed = Kind("stream closed")
    }

    /// The step that failed.
    public enum Step: Hashable, Sendable, CustomStringConvertible {
        /// Making a ``TLSContext`` from a ``TLSConfiguration``.
        case configuration
        /// The handshake.
        case handshake
        /// Reading after the handshake.
        case read
        /// Writing after the handshake.
        case write

        /// The step's name, as in `TLS handshake`.
        public var description: String {
            switch self {
            case .configuration: "TLS configuration"
            case .handshake: "TLS handshake"
            case .read: "TLS read"
            case .write: "TLS write"
            }
        }
    }

    /// What went wrong.
    public let kind: Kind
    /// The step that failed.
    public let step: Step
    /// The alert the peer sent, by name (as in `unknown CA`), for ``Kind/alertReceived`` and
    /// any other error that came with one.
    public let alert: String?
    /// More about the cause, for people to read.
    public let detail: String?

    /// An error of `kind` during `step`. TorusTLS makes these itself; the initializer is
    /// public so that code built on it, and tests, can throw the same errors.
    public init(_ kind: Kind, step: Step, alert: String? = nil, detail: String? = nil) {
        self.kind = kind
        self.step = step
        self.alert = alert
        self.detail = detail
    }

    /// `tls: ` and the kind's name, as in `tls: untrusted certificate`: how a `Server` counts
    /// connections that end with this error.
    public var connectionErrorKind: String { "tls: \(kind)" }

    /// One line, as in `TLS handshake failed: hostname mismatch: the certificate is for
    /// localhost,127.0.0.1, not example.com`.
    public var description: String {
        var text = "\(step) failed: \(kind)"
        if let alert, kind == .alertReceived { text += " (\(alert))" }
        if let detail { text += ": " + detail }
        return text
    }
}
