internal import CTorusTLS
#if canImport(Glibc)
import Glibc
#endif

// Owners of OpenSSL objects, each freeing its object when it goes.

/// An SSL_CTX, freed with its owner.
final class ContextHandle: @unchecked Sendable {
    // @unchecked Sendable: an SSL_CTX is configured once, before any connection uses it, and
    // OpenSSL makes its use by many SSL objects on many threads safe (its session cache and
    // reference counts are locked internally).
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_CTX_free(pointer) }
}

/// A reference to an SSL_SESSION, freed with its owner.
final class SessionHandle: @unchecked Sendable {
    // @unchecked Sendable: a session is immutable once made, and its reference count is atomic.
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_SESSION_free(pointer) }
}

/// What OpenSSL's callbacks read: the ALPN protocols in wire format and the table of server
/// names, with the contexts it points to. Filled while the ``TLSContext`` is made, read-only
/// after.
final class CallbackStorage: @unchecked Sendable {
    // @unchecked Sendable: written only by TLSContext.init, before the context is shared; from
    // then on OpenSSL's callbacks only read it, from any thread.
    let alpn: UnsafeMutablePointer<torus_tls_alpn>
    private let alpnBytes: UnsafeMutableBufferPointer<UInt8>
    private var serverNames: [(name: UnsafeMutablePointer<CChar>, context: ContextHandle)] = []
    private var table: UnsafeMutablePointer<torus_tls_server_names>?
    private var entries: UnsafeMutableBufferPointer<torus_tls_server_name>?

    init(applicationProtocols: [String]) {
        // ALPN's wire format: each name preceded by its length in one byte.
        let wire = applicationProtocols.flatMap { name -> [UInt8] in
            let bytes = Array(name.utf8.prefix(255))
            return [UInt8(bytes.count)] + bytes
        }
        alpnBytes = .allocate(capacity: max(wire.count, 1))
        _ = alpnBytes.initialize(from: wire)
        alpn = .allocate(capacity: 1)
        alpn.initialize(to: torus_tls_alpn(protocols: alpnBytes.baseAddress, length: UInt32(wire.count)))
    }

    func addServerName(_ name: String, context: ContextHandle) {
        serverNames.append((strdup(name), context))
    }

    /// Points `context`'s SNI callback at the table of names, if there are any.
    func installServerNames(on context: OpaquePointer) {
        guard !serverNames.isEmpty else { return }
        let entries = UnsafeMutableBufferPointer<torus_tls_server_name>.allocate(capacity: serverNames.count)
        for (index, entry) in serverNames.enumerated() {
            entries[index] = torus_tls_server_name(name: entry.name, context: entry.context.pointer)
        }
        let table = UnsafeMutablePointer<torus_tls_server_names>.allocate(capacity: 1)
        table.initialize(to: torus_tls_server_names(names: entries.baseAddress, count: entries.count))
        self.entries = entries
        self.table = table
        torus_tls_set_server_names(context, table)
    }

    deinit {
        alpn.deallocate()
        alpnBytes.deallocate()
        for entry in serverNames { free(entry.name) }
        entries?.deallocate()
        table?.deallocate()
    }
}

/// The error at the head of OpenSSL's error queue (which it clears).
struct OpenSSLError {
    /// The reason code, as in `SSL_R_WRONG_VERSION_NUMBER`; 0 when the queue was empty.
    var reason: CInt
    /// OpenSSL's text for the reason, as in `wrong version number`.
    var text: String
    var isEmpty: Bool { reason == 0 && text.isEmpty }

    /// ": " and the text, or nothing: for appending to a detail.
    var suffix: String { text.isEmpty ? "" : " (OpenSSL: \(text))" }

    static func pop() -> OpenSSLError {
        var reason: CInt = 0
        var buffer = [CChar](repeating: 0, count: 256)
        _ = torus_tls_pop_error(&reason, &buffer, buffer.count)
        return OpenSSLError(reason: reason, text: String(cText: buffer))
    }
}
