internal import CTorusTLS
import Torus
#if canImport(Glibc)
import Glibc
#endif

/// One TLS connection's OpenSSL state and the handling of its bytes, without any I/O: the SSL
/// object, the transport its BIO reads and writes through, the encrypted bytes received and
/// not yet consumed, and the steps that move them (a handshake step, decrypting, encrypting).
///
/// A ``TLSStream`` owns one and does the I/O around it on its loop. `TLSMemorySession` (SPI,
/// for the fuzz targets in Fuzz/) drives the same steps over memory, so that what is fuzzed
/// is the code the streams run.
final class TLSSession {
    let ssl: OpaquePointer
    let transport: UnsafeMutablePointer<torus_tls_transport>
    /// The context the session was made from; its configuration is named in errors.
    let context: TLSContext
    /// The peer's address, named in errors.
    let peer: SocketAddress
    /// For a client: the name (or address) the server's certificate must be for.
    let expectedName: String?
    /// What the new-session callback needs (client contexts with resumption): kept alive as
    /// long as the SSL object, which points to it.
    private let slot: SessionSlot?
    /// Encrypted bytes received and not yet consumed by OpenSSL (from `leftoverStart` on).
    private var leftover: [UInt8] = []
    private var leftoverStart = 0
    /// The error that ended reading: the record stream is broken, so every later read fails
    /// with it (also when bytes decrypted before it were returned first).
    private(set) var readFailure: TLSError?

    private init(context: TLSContext, peer: SocketAddress, expectedName: String?, sessionKey: String?) throws(TLSError) {
        transport = .allocate(capacity: 1)
        transport.initialize(to: torus_tls_transport(input: nil, input_length: 0, input_ended: 0,
                                                     output: nil, output_length: 0, output_capacity: 0))
        guard let ssl = torus_tls_new_ssl(context.handle.pointer, transport) else {
            transport.deallocate()
            throw TLSError(.invalidConfiguration, step: .handshake, detail: "OpenSSL cannot make a connection\(OpenSSLError.pop().suffix)")
        }
        self.ssl = ssl
        self.context = context
        self.peer = peer
        self.expectedName = expectedName
        if let sessionKey, context.configuration.role == .client, context.configuration.sessionResumption {
            let slot = SessionSlot(context: context, key: sessionKey)
            SSL_set_ex_data(ssl, torus_tls_ex_data_index(), Unmanaged.passUnretained(slot).toOpaque())
            self.slot = slot
            if let session = context.session(for: sessionKey) {
                SSL_set_session(ssl, session)
                SSL_SESSION_free(session)   // SSL_set_session took its own reference
            }
        } else {
            self.slot = nil
        }
    }

    /// A client session to `peer`, not yet shaken hands.
    ///
    /// - Parameter serverName: The name the server's certificate must be for, also sent to it
    ///   (SNI) unless it is an IP address. Nil: `peer`'s address must be in the certificate.
    static func client(context: TLSContext, peer: SocketAddress, serverName: String?) throws(TLSError) -> TLSSession {
        guard context.configuration.role == .client else {
            throw TLSError(.invalidConfiguration, step: .handshake, detail: "a client stream needs a client context")
        }
        let name = serverName ?? peer.hostText
        let port = peer.port.map { String($0) } ?? ""
        let session = try TLSSession(context: context, peer: peer, expectedName: name, sessionKey: "\(name):\(port)")
        SSL_set_connect_state(session.ssl)
        if let serverName, !serverName.isIPAddress {
            _ = torus_tls_set_host_name(session.ssl, serverName)
        }
        switch context.configuration.verification {
        case .full where name.isIPAddress:
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session.ssl), name)
        case .full:
            SSL_set1_host(session.ssl, name)
        case .noHostnameVerification, .none:
            break
        }
        return session
    }

    /// A server session for a client at `peer`, not yet shaken hands.
    static func server(context: TLSContext, peer: SocketAddress) throws(TLSError) -> TLSSession {
        guard context.configuration.role == .server else {
            throw TLSError(.invalidConfiguration, step: .handshake, detail: "a server stream needs a server context")
        }
        let session = try TLSSession(context: context, peer: peer, expectedName: nil, sessionKey: nil)
        SSL_set_accept_state(session.ssl)
        return session
    }

    /// Decrypted bytes land here before `TLSStream.receive(timeout:)` copies them out; made
    /// at the first receive (an idle stream that never receives holds none).
    private var scratchBuffer: UnsafeMutableRawBufferPointer?

    /// The buffer for decrypted bytes: one record's worth, what one receive hands out at most.
    func scratch() -> UnsafeMutableRawBufferPointer {
        if let scratchBuffer { return scratchBuffer }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
        scratchBuffer = buffer
        return buffer
    }

    deinit {
        scratchBuffer?.deallocate()
        SSL_free(ssl)
        free(transport.pointee.output)
        transport.deallocate()
    }

    // MARK: Handshake

    /// How far a handshake step got.
    enum HandshakeProgress {
        case complete
        /// OpenSSL used up the input: the next bytes from the peer are needed.
        case needsInput
        case failed(TLSError)
    }

    /// Runs the handshake over the leftover input as far as it goes. What OpenSSL wrote (the
    /// next flight, or the alert that says why the handshake failed) waits in the transport.
    func handshakeStep() -> HandshakeProgress {
        let result = withLeftoverInput { SSL_do_handshake($0) }
        guard result != 1 else { return .complete }
        let code = SSL_get_error(ssl, result)
        return code == SSL_ERROR_WANT_READ ? .needsInput : .failed(error(code: code, step: .handshake))
    }

    // MARK: Reading

    enum ReadOutcome {
        case bytes(Int)
        /// OpenSSL used up the input without filling any of the buffer.
        case needInput
        /// The peer's close_notify.
        case end
        case failed(TLSError)
    }

    /// Decrypts the leftover input into `buffer`.
    func decryptLeftover(into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        withLeftoverInput { _ in decrypt(into: buffer) }
    }

    /// Decrypts `input`, bytes just received, into `buffer` straight from where they are;
    /// what OpenSSL does not consume (more records than fit) is copied into the leftover.
    /// Only for when the leftover is used up: bytes received later must not overtake it.
    func decrypt(into buffer: UnsafeMutableRawBufferPointer, received input: UnsafeRawBufferPointer) -> ReadOutcome {
        assert(leftoverStart == leftover.count, "received bytes overtaking \(leftover.count - leftoverStart) leftover ones")
        let (outcome, consumed) = withInput(input) { _ in decrypt(into: buffer) }
        if consumed < input.count { appendLeftover(UnsafeRawBufferPointer(rebasing: input[consumed...])) }
        return outcome
    }

    /// Decrypts from the transport's current input until `buffer` is full or the input is used
    /// up. An error after some bytes returns those bytes, and the error is ``readFailure``.
    private func decrypt(into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        var filled = 0
        while filled < buffer.count {
            let wanted = CInt(clamping: buffer.count - filled)
            let result = SSL_read(ssl, buffer.baseAddress! + filled, wanted)
            if result > 0 {
                filled += Int(result)
                continue
            }
            let code = SSL_get_error(ssl, result)
            switch code {
            case SSL_ERROR_WANT_READ:
                return filled > 0 ? .bytes(filled) : .needInput
            case SSL_ERROR_ZERO_RETURN:
                if filled > 0 { return .bytes(filled) }
                return .end
            default:
                let failure = error(code: code, step: .read)
                readFailure = failure
                return filled > 0 ? .bytes(filled) : .failed(failure)
            }
        }
        return .bytes(filled)
    }

    // MARK: Writing

    /// Encrypts `plaintext` into records, which wait in the transport.
    func encrypt(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) {
        // A read that failed (an alert, a bad record, a cut connection) failed the connection,
        // also when the bytes before it were returned first. OpenSSL then refuses SSL_write
        // without saying why (an empty error queue, SSL_ERROR_ZERO_RETURN): the write fails
        // with the read's cause instead (FuzzTLSRecords found it).
        if let readFailure {
            throw TLSError(readFailure.kind, step: .write, alert: readFailure.alert, detail: readFailure.detail)
        }
        var offset = 0
        while offset < plaintext.count {
            // SSL_write takes an Int32 count; the transport takes every byte, so each call
            // writes all it is given.
            let count = min(plaintext.count - offset, 1 << 30)
            clearErrorQueue()
            let result = SSL_write(ssl, plaintext.baseAddress! + offset, CInt(count))
            guard result > 0 else { throw error(code: SSL_get_error(ssl, result), step: .write) }
            offset += Int(result)
        }
    }

    /// Writes close_notify into the transport; nothing after a failed read (OpenSSL's
    /// SSL_shutdown must not follow a fatal error).
    func writeCloseNotify() {
        guard readFailure == nil else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    // MARK: Input

    /// Runs `call` with the transport's input set to `input`; returns its result and how many
    /// bytes of `input` OpenSSL consumed.
    func withInput<Result>(_ input: UnsafeRawBufferPointer, _ call: (OpaquePointer) -> Result) -> (Result, consumed: Int) {
        transport.pointee.input = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        transport.pointee.input_length = input.count
        // The error queue is per thread and shared by every connection of the loop: start
        // each call with it empty, so that what it holds afterwards is this call's.
        clearErrorQueue()
        let result = call(ssl)
        let consumed = input.count - transport.pointee.input_length
        transport.pointee.input = nil
        transport.pointee.input_length = 0
        return (result, consumed)
    }

    /// Empties the thread's OpenSSL error queue. Looking first is cheaper than clearing (which
    /// walks every slot of the queue), and the queue is nearly always empty: every failure
    /// read from it is cleared.
    @inline(__always)
    private func clearErrorQueue() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    /// Runs `call` with the transport reading the leftover encrypted bytes.
    func withLeftoverInput<Result>(_ call: (OpaquePointer) -> Result) -> Result {
        let (result, consumed) = leftover.withUnsafeBytes { all in
            withInput(UnsafeRawBufferPointer(rebasing: all[leftoverStart...]), call)
        }
        leftoverStart += consumed
        if leftoverStart == leftover.count {
            leftover.removeAll(keepingCapacity: leftover.capacity <= 64 * 1024)
            leftoverStart = 0
        }
        return result
    }

    /// Keeps received encrypted bytes, after those already kept, for the next OpenSSL call.
    func appendLeftover(_ bytes: UnsafeRawBufferPointer) {
        if leftoverStart > 0 {
            leftover.removeFirst(leftoverStart)
            leftoverStart = 0
        }
        leftover.append(contentsOf: bytes)
    }

    /// How many received encrypted bytes wait for OpenSSL.
    var leftoverCount: Int { leftover.count - leftoverStart }

    /// Marks the transport's input as ended: the connection reached end of stream.
    func endInput() { transport.pointee.input_ended = 1 }

    // MARK: Output

    /// The largest output buffer the transport keeps for the next records once its bytes are
    /// sent or copied; a bigger one (after a large write) is freed.
    static let keptOutputCapacity = 64 * 1024

    /// The encrypted bytes OpenSSL wrote so far, handed over (nil when there are none).
    func takeOutput() -> Output? {
        var length = 0
        var capacity = 0
        guard let bytes = torus_tls_take_output(transport, &length, &capacity) else { return nil }
        return Output(bytes: bytes, count: length, capacity: capacity)
    }

    /// Takes back an output buffer once its bytes are sent, for the next records: a stream
    /// that writes and waits, a record at a time, then reuses one buffer instead of
    /// allocating (and freeing) a record-sized one per write.
    func recycle(_ output: consuming Output) {
        torus_tls_return_output(transport, output.bytes, output.capacity, Self.keptOutputCapacity)
        output.forget()
    }

    /// A copy of the encrypted bytes OpenSSL wrote so far, for a queued send (nil when there
    /// are none). The transport keeps its buffer for the next records, so a stream that sends
    /// small messages does not allocate a record-sized buffer for each.
    func copyOutput() -> ReceivedBytes? {
        let pending = transport.pointee
        guard pending.output_length > 0, let output = pending.output else { return nil }
        let bytes = ReceivedBytes(copying: UnsafeRawBufferPointer(start: output, count: pending.output_length))
        torus_tls_reset_output(transport, Self.keptOutputCapacity)
        return bytes
    }

    /// Encrypted bytes to send, freed when dropped (or given back with ``recycle(_:)``).
    struct Output: ~Copyable {
        let bytes: UnsafeMutablePointer<UInt8>
        let count: Int
        /// The buffer's size.
        let capacity: Int
        var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: count) }
        /// Ends the value without freeing the buffer, which someone else now owns.
        consuming func forget() { discard self }
        deinit { free(bytes) }
    }
}

/// Where a client session goes when the server sends one: the context's cache, under the
/// server's name and port.
final class SessionSlot {
    let context: TLSContext
    let key: String

    init(context: TLSContext, key: String) {
        self.context = context
        self.key = key
    }
}
