internal import CTorusTLS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A checked ``TLSConfiguration``, ready for connections: certificates and keys loaded, the
/// key matched to its certificate, cipher suites parsed. Make one per configuration and share
/// it: every ``TLSStream`` made from it uses it, from any loop, and a client context keeps
/// the sessions that let later connections resume.
///
/// ```swift
/// let context = try TLSContext(.server(
///     certificateChain: .file("server.pem"), privateKey: .file("server.key")))
/// ```
public final class TLSContext: Sendable {
    /// The configuration this context was made from.
    public let configuration: TLSConfiguration
    /// OpenSSL's context (SSL_CTX) for the default identity.
    let handle: ContextHandle
    /// What the C callbacks read (ALPN protocols, the SNI table) and the contexts of the other
    /// identities: kept as long as the context is.
    private let callbackStorage: CallbackStorage
    /// For a client: the latest session per server (host and port), for resumption.
    private let sessions = Mutex<[String: SessionHandle]>([:])

    /// Checks `configuration` and makes a context from it.
    ///
    /// - Throws: ``TLSError`` with ``TLSError/Kind/invalidConfiguration`` (a file that cannot be
    ///   read, PEM that does not parse, an unknown cipher suite, a server without an identity)
    ///   or ``TLSError/Kind/keyMismatch`` (a private key that is not its certificate's).
    public init(_ configuration: TLSConfiguration) throws {
        self.configuration = configuration
        if configuration.role == .server && configuration.identity == nil {
            throw TLSError(.invalidConfiguration, step: .configuration,
                           detail: "a server needs an identity (a certificate chain and its private key)")
        }
        if configuration.minimumVersion > configuration.maximumVersion {
            throw TLSError(.invalidConfiguration, step: .configuration,
                           detail: "the minimum version (\(configuration.minimumVersion)) is above the maximum (\(configuration.maximumVersion))")
        }
        let storage = CallbackStorage(applicationProtocols: configuration.applicationProtocols)
        let main = try Self.makeContext(configuration, identity: configuration.identity, storage: storage)
        for (name, identity) in configuration.identitiesByServerName.sorted(by: { $0.key < $1.key }) {
            storage.addServerName(name, context: try Self.makeContext(configuration, identity: identity, storage: storage))
        }
        storage.installServerNames(on: main.pointer)
        self.handle = main
        self.callbackStorage = storage
    }

    // MARK: Sessions

    /// The session kept for `key`, if any (a new reference the caller frees).
    func session(for key: String) -> OpaquePointer? {
        sessions.withLock { sessions in
            guard let session = sessions[key] else { return nil }
            SSL_SESSION_up_ref(session.pointer)
            return session.pointer
        }
    }

    /// Keeps `session` (whose reference this takes) as the latest for `key`.
    func keep(_ session: OpaquePointer, for key: String) {
        let handle = SessionHandle(session)
        sessions.withLock { $0[key] = handle }
    }

    // MARK: Building

    private static func makeContext(_ configuration: TLSConfiguration, identity: TLSConfiguration.Identity?, storage: CallbackStorage) throws -> ContextHandle {
        let isServer = configuration.role == .server
        guard let pointer = SSL_CTX_new(isServer ? TLS_server_method() : TLS_client_method()) else {
            throw configurationError("cannot make an OpenSSL context")
        }
        let context = ContextHandle(pointer)
        torus_tls_set_safe_options(pointer)
        torus_tls_set_modes(pointer)
        guard torus_tls_set_min_version(pointer, configuration.minimumVersion.openSSLValue) == 1,
              torus_tls_set_max_version(pointer, configuration.maximumVersion.openSSLValue) == 1 else {
            throw configurationError("cannot set the protocol versions")
        }
        if let suites = configuration.cipherSuites, SSL_CTX_set_cipher_list(pointer, suites) != 1 {
            throw configurationError("no usable TLS 1.2 cipher suite in \"\(suites)\"")
        }
        if let suites = configuration.tls13CipherSuites, SSL_CTX_set_ciphersuites(pointer, suites) != 1 {
            throw configurationError("no usable TLS 1.3 cipher suite in \"\(suites)\"")
        }

        let verifies = isServer ? configuration.clientAuthentication != .none : configuration.verification != .none
        var mode = verifies ? SSL_VERIFY_PEER : SSL_VERIFY_NONE
        if isServer && configuration.clientAuthentication == .required { mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT }
        SSL_CTX_set_verify(pointer, mode, nil)
        if verifies {
            switch configuration.trustRoots {
            case .system:
                guard SSL_CTX_set_default_verify_paths(pointer) == 1 else {
                    throw configurationError("cannot load the system's trust store")
                }
            case .certificates(let pem):
                let bytes = try read(pem, what: "trusted certificates")
                let count = bytes.withUnsafeBytes {
                    torus_tls_add_trusted_certificates(pointer, $0.baseAddress, $0.count, isServer ? 1 : 0)
                }
                guard count > 0 else { throw configurationError("no certificate in the trusted certificates \(pem.name)") }
            }
        }

        if let identity {
            let chain = try read(identity.certificateChain, what: "certificate chain")
            let chainCount = chain.withUnsafeBytes { torus_tls_use_certificate_chain(pointer, $0.baseAddress, $0.count) }
            guard chainCount > 0 else { throw configurationError("no usable certificate in \(identity.certificateChain.name)") }
            let key = try read(identity.privateKey, what: "private key")
            let keyLoaded = key.withUnsafeBytes { torus_tls_use_private_key(pointer, $0.baseAddress, $0.count) }
            guard keyLoaded == 1 else {
                // SSL_CTX_use_PrivateKey checks the key against the certificate; a key that
                // parses but does not match fails there.
                let error = OpenSSLError.pop()
                if error.reason == X509_R_KEY_VALUES_MISMATCH {
                    throw TLSError(.keyMismatch, step: .configuration,
                                   detail: "\(identity.privateKey.name) is not the key of \(identity.certificateChain.name)")
                }
                throw TLSError(.invalidConfiguration, step: .configuration,
                               detail: "no usable private key in \(identity.privateKey.name)\(error.suffix)")
            }
            guard SSL_CTX_check_private_key(pointer) == 1 else {
                _ = OpenSSLError.pop()
                throw TLSError(.keyMismatch, step: .configuration,
                               detail: "\(identity.privateKey.name) is not the key of \(identity.certificateChain.name)")
            }
        }

        if !configuration.applicationProtocols.isEmpty {
            if isServer {
                torus_tls_set_alpn_server(pointer, storage.alpn)
            } else {
                // SSL_CTX_set_alpn_protos returns 0 on success.
                guard SSL_CTX_set_alpn_protos(pointer, storage.alpn.pointee.protocols, storage.alpn.pointee.length) == 0 else {
                    throw configurationError("cannot set the application protocols")
                }
            }
        }

        if !configuration.sessionResumption {
            torus_tls_disable_resumption(pointer)
        } else if isServer {
            // Resumption is checked against this, so that a session of another server (or of
            // another configuration) is not taken.
            let id: [UInt8] = Array("torus".utf8)
            SSL_CTX_set_session_id_context(pointer, id, UInt32(id.count))
            // Tickets carry TLS 1.3 sessions and most TLS 1.2 ones; the server-side cache is
            // for TLS 1.2 clients without tickets. OpenSSL's default (20,480 sessions) grew a
            // server's memory by tens of MiB under the TLS chaos soak; 1,024 bounds it.
            torus_tls_set_server_session_cache_size(pointer, 1024)
        } else {
            torus_tls_set_client_session_cache(pointer)
            torus_tls_set_new_session_callback(pointer, { ssl, session in
                guard let ssl, let session else { return 0 }
                return TLSStream.sessionArrived(ssl, session) ? 1 : 0
            })
        }
        return context
    }

    private static func configurationError(_ detail: String) -> TLSError {
        TLSError(.invalidConfiguration, step: .configuration, detail: detail + OpenSSLError.pop().suffix)
    }

    /// The bytes of `pem`, reading its file if it is one.
    private static func read(_ pem: TLSConfiguration.PEM, what: String) throws -> [UInt8] {
        switch pem {
        case .bytes(let bytes):
            return bytes
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                throw TLSError(.invalidConfiguration, step: .configuration, detail: "cannot read the \(what) file \(path): \(reason)")
            }
            defer { close(fd) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else {
                    let reason = String(cString: strerror(errno))
                    throw TLSError(.invalidConfiguration, step: .configuration, detail: "cannot read the \(what) file \(path): \(reason)")
                }
                if count == 0 { return bytes }
                bytes.append(contentsOf: chunk[..<count])
                // PEM files are small; a huge one is a mistake, not a certificate.
                guard bytes.count <= 16 * 1024 * 1024 else {
                    throw TLSError(.invalidConfiguration, step: .configuration, detail: "the \(what) file \(path) is over 16 MiB")
                }
            }
        }
    }
}

extension TLSConfiguration.Version {
    var openSSLValue: CInt {
        switch self {
        case .tls12: TLS1_2_VERSION
        case .tls13: TLS1_3_VERSION
        }
    }
}

extension TLSConfiguration.PEM {
    /// How errors name it: the path, or "the PEM bytes given".
    var name: String {
        switch self {
        case .file(let path): path
        case .bytes: "the PEM bytes given"
        }
    }
}
