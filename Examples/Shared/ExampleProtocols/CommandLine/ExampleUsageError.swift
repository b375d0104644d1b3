/// A command line an example program cannot run with; the description says what to fix.
public struct ExampleUsageError: Error, CustomStringConvertible, Sendable {
    /// The message for the user, ending with the usage line.
    public let description: String

    /// An error with `description` as its message.
    public init(_ description: String) { self.description = description }
}
