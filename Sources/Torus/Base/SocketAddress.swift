#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 address.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    /// The address in network byte order, as in `in_addr.s_addr`.
    public var rawValue: UInt32

    /// An address from its value in network byte order, as in `in_addr.s_addr`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Builds an address from its four parts: `IPv4Address(127, 0, 0, 1)`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        let hostOrder = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        rawValue = hostOrder.bigEndian
    }

    /// Parses dotted-decimal notation (`"127.0.0.1"`); nil if the text is not an IPv4 literal.
    public init?(_ text: String) {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        rawValue = address.s_addr
    }

    /// `127.0.0.1`.
    public static let loopback = IPv4Address(127, 0, 0, 1)
    /// `0.0.0.0`: every local address, for listening.
    public static let any = IPv4Address(rawValue: 0)

    /// Dotted-decimal notation, as in `127.0.0.1`.
    public var description: String {
        var address = in_addr(s_addr: rawValue)
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
        return String(decodingCString: buffer)
    }
}

/// An IPv6 address.
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    /// The 16 address bytes in network order.
    public var bytes: (UInt64, UInt64)

    init(_ address: in6_addr) {
        var address = address
        bytes = withUnsafeBytes(of: &address) { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }

    /// Parses IPv6 text (`"::1"`, `"fe80::1"`); nil if the text is not an IPv6 literal.
    public init?(_ text: String) {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        self.init(address)
    }

    var in6: in6_addr {
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            raw.storeBytes(of: bytes.0, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: bytes.1, toByteOffset: 8, as: UInt64.self)
        }
        return address
    }

    /// `::1`.
    public static let loopback = IPv6Address("::1")!
    /// `::`: every local address, for listening.
    public static let any = IPv6Address("::")!

    /// Whether `lhs` and `rhs` are the same address.
    public static func == (lhs: IPv6Address, rhs: IPv6Address) -> Bool { lhs.bytes == rhs.bytes }
    /// Hashes the 16 address bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.0)
        hasher.combine(bytes.1)
    }

    /// The compressed text form, as in `::1` or `fe80::1`.
    public var description: String {
        var address = in6
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
        return String(decodingCString: buffer)
    }
}

/// Where a socket listens or connects: an IPv4 or IPv6 address with a port, or a Unix-domain
/// socket path.
///
/// ```swift
/// let a = SocketAddress.ipv4(.loopback, port: 8080)
/// let b = try SocketAddress("[::1]:8080")
/// let c = try SocketAddress("/tmp/echo.sock")
/// ```
public enum SocketAddress: Hashable, Sendable {
    /// An IPv4 address and port.
    case ipv4(IPv4Address, port: UInt16)
    /// An IPv6 address and port, and the index of the network interface a link-local address
    /// belongs to (`scopeID`, 0 for none).
    case ipv6(IPv6Address, port: UInt16, scopeID: UInt32 = 0)
    /// The path of a Unix-domain socket in the file system, at most
    /// ``maximumUnixPathLength`` bytes.
    case unix(path: String)

    /// The longest Unix-domain socket path the kernel accepts (bytes, without the NUL).
    public static let maximumUnixPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// The port of an IP address; nil for Unix-domain addresses.
    public var port: UInt16? {
        switch self {
        case .ipv4(_, let port), .ipv6(_, let port, _): port
        case .unix: nil
        }
    }

    /// The same address with another port (Unix-domain addresses are returned unchanged).
    public func withPort(_ port: UInt16) -> SocketAddress {
        switch self {
        case .ipv4(let host, _): .ipv4(host, port: port)
        case .ipv6(let host, _, let scope): .ipv6(host, port: port, scopeID: scope)
        case .unix: self
        }
    }

    var family: CInt {
        switch self {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        case .unix: AF_UNIX
        }
    }

    /// The address as the kernel takes it.
    /// A socket address as the kernel takes it: the storage and the length used.
    struct Storage {
        var address: sockaddr_storage
        var length: socklen_t
    }

    /// The address as the kernel takes it.
    func storage() throws(TorusError) -> Storage {
        let (address, length) = try sockaddr()
        return Storage(address: address, length: length)
    }

    func sockaddr() throws(TorusError) -> (sockaddr_storage, socklen_t) {
        var storage = sockaddr_storage()
        let length: Int
        switch self {
        case .ipv4(let host, let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr = in_addr(s_addr: host.rawValue)
            withUnsafeBytes(of: address) { raw in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
            }
            length = MemoryLayout<sockaddr_in>.size
        case .ipv6(let host, let port, let scope):
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = host.in6
            address.sin6_scope_id = scope
            withUnsafeBytes(of: address) { raw in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
            }
            length = MemoryLayout<sockaddr_in6>.size
        case .unix(let path):
            let bytes = Array(path.utf8)
            guard !bytes.isEmpty, bytes.count <= Self.maximumUnixPathLength, !bytes.contains(0) else {
                throw TorusError(.invalidAddress, operation: .parseAddress,
                                 detail: "a Unix-domain path must be 1 to \(Self.maximumUnixPathLength) bytes without NUL: \"\(path)\"")
            }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            withUnsafeBytes(of: address) { raw in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
            }
            length = MemoryLayout<sa_family_t>.size + bytes.count + 1
        }
        return (storage, socklen_t(length))
    }

    /// Reads an address the kernel wrote.
    init?(_ storage: sockaddr_storage, length: socklen_t) {
        var storage = storage
        switch CInt(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self = .ipv4(IPv4Address(rawValue: address.sin_addr.s_addr), port: UInt16(bigEndian: address.sin_port))
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            self = .ipv6(IPv6Address(address.sin6_addr), port: UInt16(bigEndian: address.sin6_port), scopeID: address.sin6_scope_id)
        case AF_UNIX:
            let pathOffset = MemoryLayout<sa_family_t>.size
            let pathLength = max(0, Int(length) - pathOffset)
            let path = withUnsafeBytes(of: &storage) { raw -> String in
                let bytes = raw[pathOffset..<(pathOffset + pathLength)]
                return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            self = .unix(path: path)
        default:
            return nil
        }
    }
}

extension SocketAddress {
    /// Parses `"127.0.0.1:8080"`, `"[::1]:8080"`, `"[fe80::1%eth0]:8080"` or a Unix-domain path
    /// (`"/tmp/x.sock"`, `"./x.sock"`, or `"unix:x.sock"`).
    ///
    /// Host names are not resolved here; use ``resolve(host:port:)`` for those.
    ///
    /// - Throws: ``TorusError`` of kind ``TorusError/Kind/invalidAddress`` naming what is wrong.
    public init(_ text: String) throws(TorusError) {
        func invalid(_ why: String) -> TorusError {
            TorusError(.invalidAddress, operation: .parseAddress, detail: "\(why): \"\(text)\"")
        }
        if text.hasPrefix("unix:") {
            self = .unix(path: String(text.dropFirst(5)))
            _ = try sockaddr()
            return
        }
        if text.hasPrefix("/") || text.hasPrefix("./") || text.hasPrefix("../") {
            self = .unix(path: text)
            _ = try sockaddr()
            return
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid("missing ']' after IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("expected ':PORT' after ']'") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid("expected HOST:PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw invalid("an IPv6 address with a port must be written in brackets, as [::1]:8080") }
        }
        let port = try Self.parsePort(portText, in: text)
        self = try Self(host: String(host), port: port, original: text)
        if text.hasPrefix("["), case .ipv4 = self {
            throw invalid("brackets are for IPv6 addresses; write an IPv4 address without them")
        }
    }

    /// An address from a numeric host (`"127.0.0.1"`, `"::1"`) and a port.
    ///
    /// - Throws: ``TorusError`` of kind ``TorusError/Kind/invalidAddress`` if `host` is not an
    ///   IP literal.
    public init(host: String, port: UInt16) throws(TorusError) {
        self = try Self(host: host, port: port, original: host)
    }

    private init(host: String, port: UInt16, original: String) throws(TorusError) {
        if let v4 = IPv4Address(host) {
            self = .ipv4(v4, port: port)
            return
        }
        var name = Substring(host)
        var scopeID: UInt32 = 0
        if let percent = host.firstIndex(of: "%") {
            name = host[..<percent]
            let zone = String(host[host.index(after: percent)...])
            scopeID = UInt32(zone) ?? if_nametoindex(zone)
            if scopeID == 0 {
                throw TorusError(.invalidAddress, operation: .parseAddress, detail: "unknown IPv6 zone '\(zone)': \"\(original)\"")
            }
        }
        if let v6 = IPv6Address(String(name)) {
            self = .ipv6(v6, port: port, scopeID: scopeID)
            return
        }
        let why = host.isEmpty ? "missing host" : "'\(host)' is not an IP address (use SocketAddress.resolve(host:port:) for host names)"
        throw TorusError(.invalidAddress, operation: .parseAddress, detail: "\(why): \"\(original)\"")
    }

    private static func parsePort(_ text: Substring, in original: String) throws(TorusError) -> UInt16 {
        guard !text.isEmpty else {
            throw TorusError(.invalidAddress, operation: .parseAddress, detail: "missing port: \"\(original)\"")
        }
        guard text.allSatisfy({ $0.isASCII && $0.isNumber }), text.count <= 5, let value = Int(text) else {
            throw TorusError(.invalidAddress, operation: .parseAddress, detail: "port '\(text)' is not a number from 0 to 65535: \"\(original)\"")
        }
        guard value <= 65535 else {
            throw TorusError(.invalidAddress, operation: .parseAddress, detail: "port \(value) is out of range (0...65535): \"\(original)\"")
        }
        return UInt16(value)
    }
}

extension SocketAddress: CustomStringConvertible {
    /// `127.0.0.1:8080`, `[::1]:8080`, or the Unix-domain path (with a `unix:` prefix when
    /// it would not otherwise read as a path), so that the text parses back to the address.
    public var description: String {
        switch self {
        case .ipv4(let host, let port): "\(host):\(port)"
        case .ipv6(let host, let port, let scope): scope == 0 ? "[\(host)]:\(port)" : "[\(host)%\(scope)]:\(port)"
        case .unix(let path):
            path.hasPrefix("/") || path.hasPrefix("./") || path.hasPrefix("../") ? path : "unix:" + path
        }
    }
}

extension String {
    /// The text of a NUL-terminated C character buffer.
    init(decodingCString buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
