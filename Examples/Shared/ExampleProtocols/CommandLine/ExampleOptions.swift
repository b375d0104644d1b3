/// The `--name value` options of an example program, parsed against the names it accepts.
///
/// ```swift
/// let options = try ExampleOptions(CommandLine.arguments.dropFirst(), accepting: ["host", "port"],
///                                  usage: "usage: tool [--host ADDRESS] [--port PORT]")
/// let port = try options.port("port", default: 8080)
/// ```
public struct ExampleOptions: Sendable {
    private var values: [String: String] = [:]
    /// The usage line, repeated in every error.
    public let usage: String

    /// Parses `arguments` (without the program name).
    ///
    /// - Throws: ``ExampleUsageError`` for `--help`, an unknown option or a missing value.
    public init(_ arguments: some Sequence<String>, accepting names: Set<String>, usage: String) throws(ExampleUsageError) {
        self.usage = usage
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            if flag == "--help" || flag == "-h" { throw ExampleUsageError(usage) }
            guard flag.hasPrefix("--"), names.contains(String(flag.dropFirst(2))) else {
                throw ExampleUsageError("unknown option \(flag)\n\(usage)")
            }
            guard let value = remaining.next() else { throw ExampleUsageError("\(flag) needs a value\n\(usage)") }
            values[String(flag.dropFirst(2))] = value  // The last value given wins, as scripts expect.
        }
    }

    /// The text given for `--name`, or nil when it was not given.
    public func string(_ name: String) -> String? {
        values[name]
    }

    /// The text given for `--name`, or `fallback`.
    public func string(_ name: String, default fallback: String) -> String {
        values[name] ?? fallback
    }

    /// A port number (0 asks the kernel for a free one).
    public func port(_ name: String, default fallback: UInt16) throws(ExampleUsageError) -> UInt16 {
        guard let text = values[name] else { return fallback }
        guard let port = UInt16(text) else { throw ExampleUsageError("--\(name) must be 0...65535, not \(text)") }
        return port
    }

    /// A whole number at least `minimum`.
    public func integer(_ name: String, default fallback: Int, minimum: Int = 1) throws(ExampleUsageError) -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), value >= minimum else {
            throw ExampleUsageError("--\(name) must be a whole number >= \(minimum), not \(text)")
        }
        return value
    }

    /// A duration given in seconds (fractions allowed, e.g. `0.5`); must be positive.
    public func seconds(_ name: String, default fallback: Duration) throws(ExampleUsageError) -> Duration {
        guard let text = values[name] else { return fallback }
        guard let seconds = Double(text), seconds > 0, seconds < 1e9 else {
            throw ExampleUsageError("--\(name) must be a positive number of seconds, not \(text)")
        }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}
