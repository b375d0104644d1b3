/// Why a RESP stream could not be parsed. Answer with `-ERR` + ``message``; when
/// ``isFatal`` the stream is out of step (inside a broken frame): close the connection after
/// the answer. Otherwise the bad command was skipped and parsing goes on.
public enum RESPParseError: Error, Equatable, Sendable {
    /// `*` not followed by a number in range.
    case invalidMultibulkLength
    /// `$` not followed by a number in range.
    case invalidBulkLength
    /// A bulk string declared longer than the configured limit.
    case bulkTooLarge(limit: Int)
    /// Inside an array, something other than a bulk string (`$`).
    case expectedBulk(found: UInt8)
    /// A bulk string not followed by CRLF.
    case missingBulkTerminator
    /// An inline command line (or a length line) longer than the limit.
    case lineTooLong
    /// An inline command with a quote that does not close. The line was skipped.
    case unbalancedQuotes

    /// Whether the stream cannot be resynchronised (close after answering).
    public var isFatal: Bool { self != .unbalancedQuotes }

    /// The error text, in Redis's words where Redis has them.
    public var message: String {
        switch self {
        case .invalidMultibulkLength: "Protocol error: invalid multibulk length"
        case .invalidBulkLength: "Protocol error: invalid bulk length"
        case .bulkTooLarge(let limit): "Protocol error: bulk string longer than the limit of \(limit) bytes"
        case .expectedBulk(let found): "Protocol error: expected '$', got '\(Character(Unicode.Scalar(found)))'"
        case .missingBulkTerminator: "Protocol error: bulk string not followed by CRLF"
        case .lineTooLong: "Protocol error: too big inline request"
        case .unbalancedQuotes: "Protocol error: unbalanced quotes in request"
        }
    }
}
