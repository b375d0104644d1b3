import ExampleProtocols

/// One item of a batch handed to the store: a command, or a protocol error to answer in its
/// place (so replies stay in the order of the requests).
enum KVRequest: Sendable {
    case command(RESPCommand)
    case protocolError(RESPParseError)
}
