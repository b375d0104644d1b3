/// One item of a ``RESPBatch``: a command, or a protocol error to answer in its place (so
/// that replies stay in the order of the requests).
public enum RESPRequest: Equatable, Sendable {
    /// A command to run.
    case command(RESPCommand)
    /// Bytes that were not a command; when the error ``RESPParseError/isFatal``, it is the
    /// batch's last item and the connection should close after answering it.
    case protocolError(RESPParseError)
}
