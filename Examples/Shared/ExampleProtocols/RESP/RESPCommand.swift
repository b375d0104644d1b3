/// One command read from a RESP stream: its arguments, the name first.
///
/// The arguments are slices of the parser's storage (no copy); drop the command before
/// appending more bytes to the parser, or that append copies the storage.
public struct RESPCommand: Equatable, Sendable {
    /// The arguments; `arguments[0]` is the command name, in whatever case the client sent.
    public var arguments: [ArraySlice<UInt8>]

    /// A command with these arguments.
    public init(_ arguments: [ArraySlice<UInt8>]) {
        self.arguments = arguments
    }

    /// A command from strings, for tests and clients.
    public init(_ strings: String...) {
        arguments = strings.map { ArraySlice($0.utf8) }
    }
}
