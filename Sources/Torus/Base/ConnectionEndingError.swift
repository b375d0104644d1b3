/// An error that ends a connection because of the peer or the network, not because of a
/// defect in the code serving it: a reset, a timeout, a failed TLS handshake.
///
/// A ``Server`` logs a handler that ends with one at debug level (a handler that throws any
/// other error is logged as failed, at warning level) and counts it in its metrics under
/// ``connectionErrorKind``. ``TorusError`` conforms, and so do errors of modules built on
/// Torus, such as TorusTLS's `TLSError`.
public protocol ConnectionEndingError: Error {
    /// A short name for the kind of error, as in `connection reset by peer`: the `kind`
    /// dimension of the server's `torus.connection.errors` counter (keep it to a few values).
    var connectionErrorKind: String { get }
}

extension TorusError: ConnectionEndingError {
    /// The ``TorusError/kind``'s name.
    public var connectionErrorKind: String { kind.description }
}
