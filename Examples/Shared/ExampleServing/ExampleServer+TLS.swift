public import ExampleProtocols
public import Torus
public import TorusTLS

/// TLS for the example servers: `--tls-cert FILE --tls-key FILE` serves over TLS instead of
/// plaintext, `--tls-client-ca FILE` also requires client certificates signed by that CA
/// (mutual TLS), and `--tls-sni NAME=CERT:KEY[,NAME=CERT:KEY...]` serves other certificates
/// to clients asking for those names (SNI; a name may be `*.domain`).
/// `scripts/make-test-certs.sh DIR` makes certificates to try it with.
extension ExampleServer {
    /// The TLS option names, to add to an example's accepted options.
    public static let tlsOptionNames: Set<String> = ["tls-cert", "tls-key", "tls-client-ca", "tls-sni"]

    /// The TLS options as a usage fragment.
    public static let tlsUsage = "[--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] [--tls-sni NAME=CERT:KEY,...]]"

    /// The server TLS context the options ask for, or nil for plaintext.
    ///
    /// - Parameter applicationProtocols: What the server offers by ALPN (as in `["http/1.1"]`).
    /// - Throws: ``ExampleUsageError`` when only one of `--tls-cert` and `--tls-key` is given,
    ///   `TLSError` when the files cannot be used (unreadable, not PEM, a key that is not the
    ///   certificate's).
    public static func tlsContext(_ options: ExampleOptions, applicationProtocols: [String] = []) throws -> TLSContext? {
        let certificate = options.string("tls-cert")
        let key = options.string("tls-key")
        guard let certificate, let key else {
            if certificate != nil || key != nil || options.string("tls-client-ca") != nil || options.string("tls-sni") != nil {
                throw ExampleUsageError("--tls-cert and --tls-key go together (and --tls-client-ca and --tls-sni need both)\n\(options.usage)")
            }
            return nil
        }
        var configuration = TLSConfiguration.server(certificateChain: .file(certificate), privateKey: .file(key))
        configuration.applicationProtocols = applicationProtocols
        if let table = options.string("tls-sni") {
            configuration.identitiesByServerName = try serverNameIdentities(table, usage: options.usage)
        }
        if let clientCA = options.string("tls-client-ca") {
            configuration.clientAuthentication = .required
            configuration.trustRoots = .certificates(.file(clientCA))
        }
        return try TLSContext(configuration)
    }

    /// `NAME=CERT:KEY,...` as identities by server name.
    static func serverNameIdentities(_ table: String, usage: String) throws(ExampleUsageError) -> [String: TLSConfiguration.Identity] {
        var identities: [String: TLSConfiguration.Identity] = [:]
        for entry in table.split(separator: ",") {
            let nameAndFiles = entry.split(separator: "=", maxSplits: 1)
            let files = nameAndFiles.last?.split(separator: ":", maxSplits: 1) ?? []
            guard nameAndFiles.count == 2, files.count == 2, !nameAndFiles[0].isEmpty else {
                throw ExampleUsageError("--tls-sni takes NAME=CERT:KEY entries separated by commas, not '\(entry)'\n\(usage)")
            }
            identities[String(nameAndFiles[0])] = .init(certificateChain: .file(String(files[0])), privateKey: .file(String(files[1])))
        }
        return identities
    }

    /// Serves the connections of every listener as ``serve(_:configuration:handle:)`` does,
    /// over TLS when `tls` is given: then each connection's handshake runs first (bounded by
    /// `handshakeTimeout`) and `handleTLS` gets the TLS stream; otherwise `handle` gets the
    /// connection. Two handlers, not one taking any stream, so that each is compiled for its
    /// stream type (write one generic function and pass it twice).
    public static func serve(
        _ listeners: [Listener],
        configuration: Server.Configuration = .init(),
        tls: TLSContext?,
        handshakeTimeout: Duration = .seconds(10),
        handle: @escaping @Sendable (isolated Connection) async throws -> Void,
        handleTLS: @escaping @Sendable (isolated TLSStream) async throws -> Void
    ) async throws {
        guard let tls else {
            return try await serve(listeners, configuration: configuration, handle: handle)
        }
        try await Server(listeners: listeners, configuration: configuration, logger: quietLogger)
            .run(tls: tls, handshakeTimeout: handshakeTimeout, handleTLS)
    }
}
