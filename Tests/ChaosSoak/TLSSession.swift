import CChaosSoakTLS

#if canImport(Glibc)
import Glibc
#endif

/// One connection's TLS state: an OpenSSL client over two memory BIOs. OpenSSL never touches
/// the socket: the connection recv()s ciphertext into the read BIO (``feed(from:)``), OpenSSL
/// writes its ciphertext into the write BIO, which is moved to ``outgoing`` after every call,
/// and the connection send()s that as the socket takes it. So the socket I/O stays the
/// client's own non-blocking recv/send in its poll loop, and the client decides exactly which
/// encrypted bytes reach the server (a handshake cut at any byte). SSL_ERROR_WANT_READ means
/// "feed me more"; with memory BIOs OpenSSL never wants to write (its output only grows
/// ``outgoing``, which the writer keeps bounded).
final class TLSSession {
    /// How a handshake step ended.
    enum Step {
        case done
        case wantsInput
        case failed(String)
    }

    /// What a read gave.
    enum Read {
        case bytes(Int)
        /// No plaintext until more ciphertext arrives, and the socket has none now.
        case wouldBlock
        /// The server's close_notify.
        case closeNotify
        /// The socket's end of stream (no close_notify before it).
        case endOfStream
        /// `recv` failed (`ECONNRESET`, ...).
        case socketError(Int32)
        /// OpenSSL failed: a bad record, an alert, a refused renegotiation.
        case tlsError(String)
    }

    /// What a feed from the socket gave.
    enum Feed {
        case fed(Int)
        case wouldBlock
        case endOfStream
        case socketError(Int32)
    }

    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    private let client: TLSClient
    /// Ciphertext OpenSSL wrote, not yet sent.
    var outgoing = OutgoingBytes()
    /// During the handshake: the bytes of each flight the client produced, in order (a flight
    /// is what one handshake call wrote).
    private(set) var flights: [Int] = []
    private var handshaking = true

    /// Ciphertext queued beyond which the writer waits for the socket.
    static let outgoingLimit = 64 * 1024
    /// Plaintext per SSL_write: one record.
    static let recordSize = 16 * 1024

    /// Nil when OpenSSL cannot allocate.
    init?(client: TLSClient, tls12Only: Bool) {
        guard let ssl = client.makeSSL(tls12Only: tls12Only) else { return nil }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        chaos_tls_memory_bio_retries_when_empty(readBIO)
        chaos_tls_memory_bio_retries_when_empty(writeBIO)
        SSL_set_bio(ssl, readBIO, writeBIO)  // the SSL object owns both BIOs from here on
        SSL_set_connect_state(ssl)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.client = client
    }

    deinit {
        SSL_free(ssl)
    }

    /// The negotiated version is TLS 1.3 (after the handshake).
    var isTLS13: Bool { SSL_version(ssl) == TLS1_3_VERSION }

    /// Plaintext already decrypted, or ciphertext not yet looked at: a read may give bytes
    /// without anything new from the socket (poll would not report it).
    var hasBufferedInput: Bool { SSL_pending(ssl) > 0 || BIO_ctrl_pending(readBIO) > 0 }

    /// Runs the handshake as far as the ciphertext fed so far allows.
    func handshake() -> Step {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        let error = SSL_get_error(ssl, result)
        let produced = takeOutput()
        if handshaking, produced > 0 { flights.append(produced) }
        if result == 1 {
            handshaking = false
            return .done
        }
        if error == SSL_ERROR_WANT_READ { return .wantsInput }
        return .failed(describe(error))
    }

    /// Reads what the socket has into the read BIO (up to 256 KiB).
    func feed(from fd: Int32) -> Feed {
        var total = 0
        while total < 256 * 1024 {
            let count = recv(fd, client.scratch.baseAddress, client.scratch.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                BIO_write(readBIO, client.scratch.baseAddress, Int32(count))
                total += count
                continue
            }
            if count == 0 { return total > 0 ? .fed(total) : .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return total > 0 ? .fed(total) : .wouldBlock
            default: return total > 0 ? .fed(total) : .socketError(errno)
            }
        }
        return .fed(total)
    }

    /// Up to `wanted` plaintext bytes into `buffer`, feeding ciphertext from `fd` as needed.
    func read(into buffer: UnsafeMutableRawBufferPointer, wanted: Int, from fd: Int32) -> Read {
        while true {
            ERR_clear_error()
            let count = SSL_read(ssl, buffer.baseAddress, Int32(min(wanted, buffer.count)))
            let error = SSL_get_error(ssl, count)
            takeOutput()  // alerts, key updates, a renegotiation's messages
            if count > 0 { return .bytes(Int(count)) }
            switch error {
            case SSL_ERROR_ZERO_RETURN: return .closeNotify
            case SSL_ERROR_WANT_READ:
                switch feed(from: fd) {
                case .fed: continue
                case .wouldBlock: return .wouldBlock
                case .endOfStream: return .endOfStream
                case .socketError(let code): return .socketError(code)
                }
            default: return .tlsError(describe(error))
            }
        }
    }

    /// Encrypts `bytes` (at most a record) into ``outgoing``. Returns how many were taken, or
    /// a message when OpenSSL refuses (0 with nil: not now, as during a renegotiation).
    func write(_ bytes: UnsafeRawBufferPointer) -> (count: Int, failure: String?) {
        ERR_clear_error()
        let count = SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))
        let error = SSL_get_error(ssl, count)
        takeOutput()
        if count > 0 { return (Int(count), nil) }
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return (0, nil) }
        return (0, describe(error))
    }

    /// Queues close_notify.
    func sendCloseNotify() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        takeOutput()
        ERR_clear_error()
    }

    /// Asks the server to renegotiate (TLS 1.2): queues a ClientHello on the open connection.
    /// False when OpenSSL refuses to start.
    func renegotiate() -> Bool {
        ERR_clear_error()
        guard SSL_renegotiate(ssl) == 1 else { return false }
        _ = SSL_do_handshake(ssl)  // sends the ClientHello; then wants the server's answer
        takeOutput()
        ERR_clear_error()
        return true
    }

    /// A renegotiation asked for has not completed.
    var renegotiationPending: Bool { SSL_renegotiate_pending(ssl) != 0 }

    /// Moves what OpenSSL wrote to ``outgoing``; returns how many bytes.
    @discardableResult
    private func takeOutput() -> Int {
        var total = 0
        while BIO_ctrl_pending(writeBIO) > 0 {
            let count = BIO_read(writeBIO, client.scratch.baseAddress, Int32(client.scratch.count))
            guard count > 0 else { break }
            outgoing.append(UnsafeRawBufferPointer(rebasing: client.scratch[..<Int(count)]))
            total += Int(count)
        }
        return total
    }

    private func describe(_ error: Int32) -> String {
        var text = "SSL error \(error)"
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK { text += ", certificate: \(String(cString: X509_verify_cert_error_string(verify)))" }
        return text + ": " + TLSClient.takeErrors()
    }
}
