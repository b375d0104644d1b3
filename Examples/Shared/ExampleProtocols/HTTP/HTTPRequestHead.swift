/// The request line and the headers of an HTTP/1.x request, as far as a server needs them to
/// route the request and frame the body.
public struct HTTPRequestHead: Equatable, Sendable {
    /// The method token, e.g. `GET`.
    public var method: String
    /// The request target as sent, e.g. `/` or `/path?query`.
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// The `Content-Length`, when the request has one.
    public var contentLength: Int?
    /// Whether the body comes in chunks (`Transfer-Encoding: chunked`).
    public var isChunked: Bool
    /// Whether the connection stays open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    public var keepAlive: Bool

    /// A head with every field given.
    public init(method: String, target: String, minorVersion: Int, contentLength: Int? = nil, isChunked: Bool = false, keepAlive: Bool) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.contentLength = contentLength
        self.isChunked = isChunked
        self.keepAlive = keepAlive
    }
}
