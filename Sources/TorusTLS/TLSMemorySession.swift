internal import CTorusTLS
import Torus

/// A TLS session over memory instead of a connection, for Torus's fuzz targets (Fuzz/). Not
/// API: SPI (`@_spi(Fuzzing) import TorusTLS`), which nothing else imports.
///
/// It runs the code a ``TLSStream`` runs between its connection and OpenSSL (``TLSSession``:
/// the transport BIO, the leftover ciphertext, the decrypt loop, the error mapping) in loops
/// that mirror the stream's own, step for step, with the caller playing the connection: a
/// `receive` closure hands in what arrived when the session needs bytes, and what the session
/// sends piles up for ``takeSent()``. Only the waiting differs: where a stream would await the
/// next bytes, a memory session returns, and carries on from there at the next call.
///
/// Single-threaded, like a stream on its loop; nothing here is on any data path.
@_spi(Fuzzing)
public final class TLSMemorySession {
    /// What the connection has when the session needs more bytes.
    public enum Arrival {
        /// The bytes of one receive.
        case bytes([UInt8])
        /// The connection's end of stream.
        case endOfStream
        /// Nothing yet: the session returns and waits.
        case nothing
    }

    /// What a read got.
    public enum ReadResult: Equatable, Sendable {
        /// This many bytes, decrypted into the buffer.
        case bytes(Int)
        /// The peer's close_notify.
        case endOfStream
        /// No bytes yet: the session waits for more ciphertext.
        case waiting
    }

    private let session: TLSSession
    private var sent: [UInt8] = []
    /// OpenSSL used up the input: the next call starts by receiving (where a stream awaits).
    private var waitingForInput = false
    private var handshakeFailure: TLSError?
    private var readEnded = false
    private var writeFailure: TLSError?
    private var sentCloseNotify = false
    /// Whether the handshake has completed.
    public private(set) var isEstablished = false
    /// Called with OpenSSL's handshake state (`SSL_get_state`) after each handshake step: the
    /// fuzz targets report the states reached as coverage, since OpenSSL is not instrumented.
    public var onHandshakeStep: ((Int) -> Void)?

    /// A session for `context`'s role; a client expects the server's certificate to be for
    /// `serverName` and sends it (SNI).
    public init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
        // A stand-in for the connection's remote address, which errors name.
        let peer = SocketAddress.unix(path: "(memory)")
        session = context.configuration.role == .client
            ? try TLSSession.client(context: context, peer: peer, serverName: serverName)
            : try TLSSession.server(context: context, peer: peer)
    }

    /// The encrypted bytes the session sent since the last call, in order.
    public func takeSent() -> [UInt8] {
        defer { sent = [] }
        return sent
    }

    /// Received encrypted bytes that OpenSSL has not consumed yet.
    public var bufferedCiphertext: Int { session.leftoverCount }

    /// The capacity of the transport's output buffer, kept between calls.
    public var outputCapacity: Int { session.transport.pointee.output_capacity }

    /// The protocol version agreed, once established: 13 for TLS 1.3, 12 for TLS 1.2.
    public var protocolVersion: Int? {
        guard isEstablished else { return nil }
        return SSL_version(session.ssl) == TLS1_3_VERSION ? 13 : 12
    }

    // MARK: The stream's loops, over memory

    /// Runs the handshake as far as the arriving bytes go, as `TLSStream.handshake(timeout:)`
    /// does: true once it has completed, false when it waits for bytes.
    public func handshake(_ receive: () -> Arrival) throws(TLSError) -> Bool {
        if let handshakeFailure { throw handshakeFailure }
        if isEstablished { return true }
        while true {
            if waitingForInput {
                switch receive() {
                case .nothing: return false
                case .endOfStream: session.endInput()
                case .bytes(let bytes): bytes.withUnsafeBytes { session.appendLeftover($0) }
                }
                waitingForInput = false
            }
            let progress = session.handshakeStep()
            onHandshakeStep?(Int(SSL_get_state(session.ssl).rawValue))
            // The stream writes the flight (or the failure's alert) before going on.
            if let output = session.takeOutput() { sent.append(contentsOf: output.buffer) }
            switch progress {
            case .complete:
                isEstablished = true
                return true
            case .failed(let error):
                handshakeFailure = error
                throw error
            case .needsInput:
                waitingForInput = true
            }
        }
    }

    /// Decrypts the next bytes into `buffer`, as `TLSStream.read(into:timeout:)` does.
    public func read(into buffer: UnsafeMutableRawBufferPointer, _ receive: () -> Arrival) throws(TLSError) -> ReadResult {
        precondition(isEstablished, "a read before the handshake completed")
        guard buffer.count > 0 else { return .bytes(0) }
        if let failure = session.readFailure { throw failure }
        if readEnded { return .endOfStream }
        var outcome: TLSSession.ReadOutcome = waitingForInput ? .needInput : session.decryptLeftover(into: buffer)
        waitingForInput = false
        while true {
            // What OpenSSL wrote while reading (a key update's answer, an alert), queued.
            queueOutput()
            switch outcome {
            case .bytes(let count):
                return .bytes(count)
            case .end:
                readEnded = true
                return .endOfStream
            case .failed(let error):
                throw error
            case .needInput:
                break
            }
            switch receive() {
            case .nothing:
                waitingForInput = true
                return .waiting
            case .endOfStream:
                session.endInput()
                outcome = session.decryptLeftover(into: buffer)
            case .bytes(let bytes):
                outcome = bytes.withUnsafeBytes { session.decrypt(into: buffer, received: $0) }
            }
        }
    }

    /// Encrypts and sends `plaintext`: as `TLSStream.send(_:)` does when `queued` (the records
    /// copied out of the transport, which keeps its buffer), as `TLSStream.write(_:timeout:)`
    /// does otherwise (the transport's buffer handed over).
    public func write(_ plaintext: UnsafeRawBufferPointer, queued: Bool) throws(TLSError) {
        precondition(isEstablished, "a write before the handshake completed")
        if let writeFailure { throw writeFailure }
        if sentCloseNotify {
            throw TLSError(.streamClosed, step: .write, detail: "the stream's write side is shut down (close_notify sent)")
        }
        guard plaintext.count > 0 else { return }
        do {
            try session.encrypt(plaintext)
        } catch {
            writeFailure = error
            throw error
        }
        guard queued ? queueOutput() : takeOutput() else {
            let failure = TLSError(.protocolViolation, step: .write, detail: "OpenSSL wrote no record")
            writeFailure = failure
            throw failure
        }
    }

    /// Sends close_notify: as `TLSStream.close()` does when `queued`, as
    /// `TLSStream.shutdown(.write)` does otherwise. Once only, and only when established.
    public func sendCloseNotify(queued: Bool) {
        guard isEstablished, writeFailure == nil, !sentCloseNotify else { return }
        sentCloseNotify = true
        session.writeCloseNotify()
        _ = queued ? queueOutput() : takeOutput()
    }

    /// Sends a TLS 1.3 KeyUpdate that asks the peer to update its keys too: what another TLS
    /// implementation may do (TLSStream itself never does), so that the peer's reads have
    /// something to answer. False when it could not (TLS 1.2, or a broken stream).
    public func requestKeyUpdate() -> Bool {
        guard isEstablished, writeFailure == nil, !sentCloseNotify, protocolVersion == 13 else { return false }
        ERR_clear_error()
        // SSL_key_update schedules it; a handshake call sends it now.
        guard SSL_key_update(session.ssl, SSL_KEY_UPDATE_REQUESTED) == 1, SSL_do_handshake(session.ssl) == 1 else {
            ERR_clear_error()
            return false
        }
        return takeOutput()
    }

    // MARK: Output

    /// As `TLSStream.sendOutputQueued()` and `send(_:)` take it: a copy. False when none.
    @discardableResult
    private func queueOutput() -> Bool {
        guard let records = session.copyOutput() else { return false }
        records.withUnsafeBytes { sent.append(contentsOf: $0) }
        return true
    }

    /// As `TLSStream.write(_:timeout:)` takes it: the buffer itself. False when none.
    private func takeOutput() -> Bool {
        guard let output = session.takeOutput() else { return false }
        sent.append(contentsOf: output.buffer)
        return true
    }
}
