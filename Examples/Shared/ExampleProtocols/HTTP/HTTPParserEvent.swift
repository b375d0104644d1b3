/// What ``HTTPRequestParser/next()`` found next in the bytes: requests come as one head, any
/// number of body pieces, and one end.
public enum HTTPParserEvent: Equatable, Sendable {
    /// A request's line and headers.
    case head(HTTPRequestHead)
    /// Some body bytes (after de-chunking). The slice shares the parser's storage: drop it
    /// before appending more bytes, or the next append copies the storage.
    case body(ArraySlice<UInt8>)
    /// The end of the request: answer it now.
    case end
}
