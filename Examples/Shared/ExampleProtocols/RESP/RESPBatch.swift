/// The commands that a ``RESPDecoder`` found complete in the bytes at hand, in order, with
/// the protocol errors in their places: a collection of ``RESPRequest``.
///
/// A server runs a batch and answers it with one write. The arguments of every command are
/// copied once into one array of the batch, so a batch costs no allocation per command, and
/// the decoder reuses the batch's storage once the caller has dropped it.
public struct RESPBatch: RandomAccessCollection, Sendable {
    private enum Entry: Sendable {
        /// A command whose arguments are `arguments[range]`.
        case command(Range<Int>)
        case error(RESPParseError)
    }

    /// The bytes of every argument, one after another.
    private var bytes: [UInt8] = []
    /// Where each argument lies in `bytes`.
    private var arguments: [Range<Int>] = []
    private var entries: [Entry] = []

    /// 0.
    public var startIndex: Int { 0 }
    /// The number of requests.
    public var endIndex: Int { entries.count }

    /// The request at `position`.
    public subscript(position: Int) -> RESPRequest {
        switch entries[position] {
        case .command(let range): .command(RESPCommand(bytes: bytes, ranges: arguments[range]))
        case .error(let error): .protocolError(error)
        }
    }

    /// Appends a command with a copy of these arguments.
    mutating func appendCommand<Argument: Collection<UInt8>>(_ newArguments: some Sequence<Argument>) {
        let first = arguments.count
        for argument in newArguments {
            let start = bytes.count
            bytes.append(contentsOf: argument)
            arguments.append(start..<bytes.count)
        }
        entries.append(.command(first..<arguments.count))
    }

    /// Appends a protocol error.
    mutating func append(_ error: RESPParseError) {
        entries.append(.error(error))
    }

    /// Forgets every request, keeping the capacity (no allocation for the next batch when
    /// nobody else holds this one's storage).
    mutating func removeAll() {
        entries.removeAll(keepingCapacity: true)
        arguments.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
    }
}
