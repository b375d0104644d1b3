import ExampleProtocols

/// The responses of http-hello, appended from static strings with no formatting.
enum HTTPHelloResponses {
    /// Appends the answer to `head`: 200 `Hello, World!` for `/`, 404 otherwise; no body for
    /// `HEAD`; a `Connection` header when the connection's fate differs from the version's
    /// default.
    static func answer(_ head: HTTPRequestHead, into output: inout [UInt8]) {
        let found = head.target == "/"
        append(found ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n", to: &output)
        append(found ? "Content-Type: text/plain\r\nContent-Length: 13\r\n" : "Content-Type: text/plain\r\nContent-Length: 10\r\n", to: &output)
        if !head.keepAlive {
            append("Connection: close\r\n", to: &output)
        } else if head.minorVersion == 0 {
            append("Connection: keep-alive\r\n", to: &output)
        }
        append("\r\n", to: &output)
        if head.method != "HEAD" {
            append(found ? "Hello, World!" : "Not Found\n", to: &output)
        }
    }

    /// Appends the answer to a request that could not be parsed; the connection closes after it.
    static func fail(_ error: HTTPParseError, into output: inout [UInt8]) {
        switch error.status {
        case 431: append("HTTP/1.1 431 Request Header Fields Too Large\r\n", to: &output)
        case 501: append("HTTP/1.1 501 Not Implemented\r\n", to: &output)
        case 505: append("HTTP/1.1 505 HTTP Version Not Supported\r\n", to: &output)
        default: append("HTTP/1.1 400 Bad Request\r\n", to: &output)
        }
        append("Content-Length: 0\r\nConnection: close\r\n\r\n", to: &output)
    }

    private static func append(_ text: StaticString, to output: inout [UInt8]) {
        text.withUTF8Buffer { output.append(contentsOf: $0) }
    }
}
