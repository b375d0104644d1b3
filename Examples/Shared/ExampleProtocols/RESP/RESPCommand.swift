/// One command read from a RESP stream: its arguments, the name first, as a collection of
/// byte slices (`command[0]` is the name, in whatever case the client sent).
///
/// A command from a ``RESPBatch`` is a view of the batch's bytes (no copy); drop it with the
/// batch before the next read, so that the decoder can reuse the batch's storage.
public struct RESPCommand: RandomAccessCollection, Equatable, Sendable {
    private let bytes: [UInt8]
    private let ranges: ArraySlice<Range<Int>>

    init(bytes: [UInt8], ranges: ArraySlice<Range<Int>>) {
        self.bytes = bytes
        self.ranges = ranges
    }

    /// A command from strings, for tests and clients.
    public init(_ strings: String...) {
        var batch = RESPBatch()
        batch.appendCommand(strings.map { Array($0.utf8) })
        guard case .command(let command) = batch[0] else { preconditionFailure("a command was appended") }
        self = command
    }

    /// 0.
    public var startIndex: Int { 0 }
    /// The number of arguments.
    public var endIndex: Int { ranges.count }

    /// The argument at `position`.
    public subscript(position: Int) -> ArraySlice<UInt8> {
        bytes[ranges[ranges.startIndex + position]]
    }

    /// Whether both have the same arguments.
    public static func == (left: RESPCommand, right: RESPCommand) -> Bool {
        left.elementsEqual(right)
    }
}
