import CChaosSoakTLS

#if canImport(Glibc)
import Glibc
#endif

/// The client side of TLS for the whole run, through OpenSSL itself (CChaosSoakTLS), never
/// through TorusTLS: a bug on both sides could otherwise cancel out. Two contexts, one
/// offering TLS 1.2 and 1.3 and one offering TLS 1.2 only, both verifying the server against
/// the test CA and the expected host name. Session resumption stays off (OpenSSL's client
/// default), so that every connection runs a full handshake.
///
/// Only the poll loop's thread uses it: the contexts are not shared with another thread, and
/// `scratch` is a buffer each TLS call borrows for its duration.
final class TLSClient {
    private let modern: OpaquePointer
    private let legacy: OpaquePointer
    let serverName: String
    /// Ciphertext on its way between a socket and a memory BIO.
    let scratch: UnsafeMutableRawBufferPointer

    /// Contexts trusting the CA in `caFile`. Throws a message when OpenSSL cannot use it.
    init(caFile: String, serverName: String) throws(UsageError) {
        self.serverName = serverName
        guard let modern = try Self.context(caFile: caFile, maximumVersion: TLS1_3_VERSION),
              let legacy = try Self.context(caFile: caFile, maximumVersion: TLS1_2_VERSION)
        else { throw UsageError("cannot make an OpenSSL client context: \(Self.takeErrors())") }
        self.modern = modern
        self.legacy = legacy
        scratch = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        SSL_CTX_free(modern)
        SSL_CTX_free(legacy)
        scratch.deallocate()
    }

    private static func context(caFile: String, maximumVersion: Int32) throws(UsageError) -> OpaquePointer? {
        guard let context = SSL_CTX_new(TLS_client_method()) else { return nil }
        guard chaos_tls_set_version_range(context, TLS1_2_VERSION, maximumVersion) == 1 else {
            SSL_CTX_free(context)
            return nil
        }
        guard SSL_CTX_load_verify_file(context, caFile) == 1 else {
            SSL_CTX_free(context)
            throw UsageError("--tls-ca \(caFile): OpenSSL cannot load it: \(takeErrors())")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        return context
    }

    /// A new client SSL object for one connection (SNI and host name check set), or nil when
    /// OpenSSL cannot allocate one.
    func makeSSL(tls12Only: Bool) -> OpaquePointer? {
        guard let ssl = SSL_new(tls12Only ? legacy : modern) else { return nil }
        guard chaos_tls_set_server_name(ssl, serverName) == 1, SSL_set1_host(ssl, serverName) == 1 else {
            SSL_free(ssl)
            return nil
        }
        return ssl
    }

    /// OpenSSL's error queue as text (and empties it).
    static func takeErrors() -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        let count = chaos_tls_take_errors(&buffer, buffer.count)
        return count == 0 ? "no OpenSSL error queued" : String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
