internal import CTorusTLS
import Torus
#if canImport(Glibc)
import Glibc
#endif

/// One TLS connection's OpenSSL state: the SSL object and the transport its BIO reads and
/// writes through. Owned by one ``TLSStream`` and used only on its loop.
final class TLSSession {
    let ssl: OpaquePointer
    let transport: UnsafeMutablePointer<torus_tls_transport>
    /// What the new-session callback needs (client contexts with resumption): kept alive as
    /// long as the SSL object, which points to it.
    private let slot: SessionSlot?

    init(context: TLSContext, sessionKey: String?) throws {
        transport = .allocate(capacity: 1)
        transport.initialize(to: torus_tls_transport(input: nil, input_length: 0, input_ended: 0,
                                                     output: nil, output_length: 0, output_capacity: 0))
        guard let ssl = torus_tls_new_ssl(context.handle.pointer, transport) else {
            transport.deallocate()
            throw TLSError(.invalidConfiguration, step: .handshake, detail: "OpenSSL cannot make a connection\(OpenSSLError.pop().suffix)")
        }
        self.ssl = ssl
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

    /// Runs `call` with the transport's input set to `input`; returns its result and how many
    /// bytes of `input` OpenSSL consumed.
    func withInput<Result>(_ input: UnsafeRawBufferPointer, _ call: (OpaquePointer) -> Result) -> (Result, consumed: Int) {
        transport.pointee.input = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        transport.pointee.input_length = input.count
        // The error queue is per thread and shared by every connection of the loop: start
        // each call with it empty, so that what it holds afterwards is this call's.
        ERR_clear_error()
        let result = call(ssl)
        let consumed = input.count - transport.pointee.input_length
        transport.pointee.input = nil
        transport.pointee.input_length = 0
        return (result, consumed)
    }

    /// Marks the transport's input as ended: the connection reached end of stream.
    func endInput() { transport.pointee.input_ended = 1 }

    /// The encrypted bytes OpenSSL wrote so far, handed over (nil when there are none).
    func takeOutput() -> Output? {
        var length = 0
        guard let bytes = torus_tls_take_output(transport, &length) else { return nil }
        return Output(bytes: bytes, count: length)
    }

    /// A copy of the encrypted bytes OpenSSL wrote so far, for a queued send (nil when there
    /// are none). The transport keeps its buffer for the next records, so a stream that sends
    /// small messages does not allocate a record-sized buffer for each.
    func copyOutput() -> ReceivedBytes? {
        let pending = transport.pointee
        guard pending.output_length > 0, let output = pending.output else { return nil }
        let bytes = ReceivedBytes(copying: UnsafeRawBufferPointer(start: output, count: pending.output_length))
        torus_tls_reset_output(transport, 64 * 1024)
        return bytes
    }

    /// Encrypted bytes to send, freed when dropped.
    struct Output: ~Copyable {
        let bytes: UnsafeMutablePointer<UInt8>
        let count: Int
        var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: count) }
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
