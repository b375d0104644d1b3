internal import CTorusTLS
import Torus

extension TLSSession {
    /// The error for an OpenSSL call that failed with `code` (SSL_get_error's), from OpenSSL's
    /// error queue and the certificate verification result.
    func error(code: CInt, step: TLSError.Step) -> TLSError {
        let failure = OpenSSLError.pop()
        let verification = SSL_get_verify_result(ssl)
        if verification != X509_V_OK && (failure.reason == SSL_R_CERTIFICATE_VERIFY_FAILED || failure.isEmpty) {
            return certificateError(verification, step: step)
        }
        let reason = failure.reason
        // An alert from the peer is reported as its reason code plus SSL_AD_REASON_OFFSET.
        if reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256 {
            let alert = reason - SSL_AD_REASON_OFFSET
            let name = Self.alertName(alert)
            switch alert {
            case SSL_AD_PROTOCOL_VERSION:
                return TLSError(.noSharedVersion, step: step, alert: name, detail: "the peer sent the alert \"\(name)\": it accepts none of the versions this side offers")
            case SSL_AD_NO_APPLICATION_PROTOCOL:
                return TLSError(.noSharedApplicationProtocol, step: step, alert: name, detail: "the peer accepts none of \(context.configuration.applicationProtocols.joined(separator: ", "))")
            default:
                return TLSError(.alertReceived, step: step, alert: name, detail: "the peer sent the alert \"\(name)\"\(Self.alertHint(alert))")
            }
        }
        switch reason {
        case SSL_R_WRONG_VERSION_NUMBER, SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST,
             SSL_R_UNKNOWN_PROTOCOL, SSL_R_RECORD_LENGTH_MISMATCH:
            let what = reason == SSL_R_HTTP_REQUEST ? "plaintext HTTP" : "bytes that are not a TLS record"
            return TLSError(.notTLS, step: step, detail: "the peer \(peer) sent \(what)\(failure.suffix)")
        case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_NO_PROTOCOLS_AVAILABLE, SSL_R_VERSION_TOO_LOW, SSL_R_VERSION_TOO_HIGH:
            return TLSError(.noSharedVersion, step: step, detail: "the peer offers none of \(context.configuration.minimumVersion)–\(context.configuration.maximumVersion)\(failure.suffix)")
        case SSL_R_NO_SHARED_CIPHER, SSL_R_NO_CIPHERS_AVAILABLE, SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
            return TLSError(.noSharedCipher, step: step, detail: "the peer offers no cipher suite this side accepts\(failure.suffix)")
        case SSL_R_NO_APPLICATION_PROTOCOL:
            return TLSError(.noSharedApplicationProtocol, step: step, detail: "the peer offers none of \(context.configuration.applicationProtocols.joined(separator: ", "))")
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            return TLSError(.certificateRequired, step: step, detail: "the client sent no certificate, and this server requires one")
        case SSL_R_UNEXPECTED_EOF_WHILE_READING:
            return truncation(step: step)
        case SSL_R_NO_RENEGOTIATION, SSL_R_RENEGOTIATION_ENCODING_ERR, SSL_R_RENEGOTIATION_MISMATCH:
            return TLSError(.protocolViolation, step: step, detail: "the peer asked to renegotiate, which this side refuses\(failure.suffix)")
        case SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_ENCRYPTED_LENGTH_TOO_LONG, SSL_R_DATA_LENGTH_TOO_LONG,
             SSL_R_EXCESSIVE_MESSAGE_SIZE:
            return TLSError(.protocolViolation, step: step, detail: "the peer sent a record over the limit\(failure.suffix)")
        default:
            break
        }
        if failure.isEmpty && (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_SSL) {
            return truncation(step: step)
        }
        return TLSError(.protocolViolation, step: step, detail: failure.text.isEmpty ? "OpenSSL error \(code)" : "OpenSSL: \(failure.text)")
    }

    private func truncation(step: TLSError.Step) -> TLSError {
        step == .handshake
            ? TLSError(.truncated, step: step, detail: "the peer \(peer) closed the connection during the handshake")
            : TLSError(.truncated, step: step, detail: "the peer \(peer) closed the connection without a close_notify: what was read may be cut short")
    }

    private func certificateError(_ result: Int, step: TLSError.Step) -> TLSError {
        let (subject, issuer) = peerNames()
        let reason = String(cString: X509_verify_cert_error_string(result))
        // A server that rejected a client's certificate has no names to give: OpenSSL keeps
        // the peer's certificate only once it is verified (a client finds it in the chain).
        let who = subject.isEmpty ? "the peer's certificate" : "\"\(subject)\""
        let issuedBy = issuer.isEmpty ? "" : ", issued by \"\(issuer)\","
        switch CInt(result) {
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return TLSError(.hostnameMismatch, step: step,
                            detail: "the certificate is for \(peerAltNames()), not \(expectedName ?? "the name connected to")")
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return TLSError(.certificateExpired, step: step, detail: "\(who)\(issuedBy) has expired")
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return TLSError(.certificateNotYetValid, step: step, detail: "\(who)\(issuedBy) is not valid yet")
        default:
            return TLSError(.untrustedCertificate, step: step, detail: "\(who)\(issuedBy) is not trusted: \(reason)")
        }
    }

    /// The alert's name, as OpenSSL gives it (`unknown CA`), or from RFC 8446 for the TLS 1.3
    /// alerts OpenSSL 3.0 calls "unknown".
    private static func alertName(_ alert: CInt) -> String {
        let name = String(cString: SSL_alert_desc_string_long(alert))
        guard name == "unknown" else { return name }
        switch alert {
        case 86: return "inappropriate fallback"
        case 109: return "missing extension"
        case 115: return "unknown PSK identity"
        case 116: return "certificate required"
        case 120: return "no application protocol"
        default: return "alert \(alert)"
        }
    }

    private static func alertHint(_ alert: CInt) -> String {
        switch alert {
        case SSL_AD_UNKNOWN_CA: ": it does not trust this side's certificate"
        case SSL_AD_BAD_CERTIFICATE, SSL_AD_CERTIFICATE_REQUIRED: ": it rejected or required this side's certificate"
        case SSL_AD_HANDSHAKE_FAILURE: ": no parameters both sides accept (cipher suites, groups, signature algorithms)"
        default: ""
        }
    }
}

extension TLSSession {
    /// The peer certificate's subject and issuer, as RFC 2253 text (empty when none).
    func peerNames() -> (subject: String, issuer: String) {
        var subject = [CChar](repeating: 0, count: 512)
        var issuer = [CChar](repeating: 0, count: 512)
        torus_tls_peer_names(ssl, &subject, subject.count, &issuer, issuer.count)
        return (String(cText: subject), String(cText: issuer))
    }

    /// The names and addresses the peer's certificate is for, comma-separated.
    func peerAltNames() -> String {
        var names = [CChar](repeating: 0, count: 1024)
        torus_tls_peer_alt_names(ssl, &names, names.count)
        let text = String(cText: names)
        return text.isEmpty ? "no name" : text
    }
}

extension String {
    /// The text of a NUL-terminated C string held in an array.
    init(cText buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
