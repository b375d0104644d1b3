/// Why a request could not be parsed. After any of these the connection cannot be trusted to
/// stay in step: answer with ``status`` and close it.
public enum HTTPParseError: Error, Equatable, Sendable {
    /// The request line is not `METHOD SP TARGET SP HTTP/1.x`.
    case malformedRequestLine
    /// A header line is not `name: value`, or has a character not allowed there.
    case malformedHeader
    /// A line ended with a bare LF or a CR not followed by LF.
    case malformedLineEnding
    /// The request line and headers together exceed the limit.
    case headersTooLarge
    /// `Content-Length` is not a number, is too large, or appears twice with different values;
    /// or it is given together with `Transfer-Encoding`.
    case invalidContentLength
    /// A `Transfer-Encoding` other than `chunked`.
    case unsupportedTransferEncoding
    /// A chunk size line or the CRLF after a chunk is malformed.
    case malformedChunk
    /// An HTTP version other than 1.0 and 1.1.
    case unsupportedVersion

    /// The status code to answer with.
    public var status: Int {
        switch self {
        case .headersTooLarge: 431
        case .unsupportedTransferEncoding: 501
        case .unsupportedVersion: 505
        default: 400
        }
    }
}
