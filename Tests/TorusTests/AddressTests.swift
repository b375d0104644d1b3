import Testing
import Torus

extension TorusTests {
    /// Parsing, printing and resolving socket addresses.
    @Suite(.noDescriptorLeaks)
    struct AddressTests {
        static let malformed = [
            "", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:http",
            "::1:80", "[::1", "[::1]80", "999.1.1.1:80", "host name:80",
            "1.2.3.4:+80", "1.2.3.4:８０", "1.2.3.4:99999999999999999999", "[::1]:", "[]:80",
            ":80", "localhost:80", "1.2.3:80", "[1.2.3.4]:80", "[fe80::1%no-such-interface]:80",
            "unix:", "/" + String(repeating: "a", count: 107),
        ]

        @Test(arguments: malformed)
        func malformedAddressThrowsInvalidAddress(_ text: String) {
            #expect {
                try SocketAddress(text)
            } throws: { error in
                guard let error = error as? TorusError else { return false }
                return error.kind == .invalidAddress && error.operation == .parseAddress
                    && !(error.detail ?? "").isEmpty
            }
        }

        static let canonical: [(String, SocketAddress)] = [
            ("127.0.0.1:8080", .ipv4(.loopback, port: 8080)),
            ("0.0.0.0:0", .ipv4(.any, port: 0)),
            ("255.255.255.255:65535", .ipv4(IPv4Address(255, 255, 255, 255), port: 65535)),
            ("10.1.2.3:1", .ipv4(IPv4Address(10, 1, 2, 3), port: 1)),
            ("[::1]:8080", .ipv6(.loopback, port: 8080)),
            ("[::]:443", .ipv6(.any, port: 443)),
            ("[2001:db8::42]:53", .ipv6(IPv6Address("2001:db8::42")!, port: 53)),
            ("[::ffff:1.2.3.4]:80", .ipv6(IPv6Address("::ffff:1.2.3.4")!, port: 80)),
            ("[fe80::1%1]:80", .ipv6(IPv6Address("fe80::1")!, port: 80, scopeID: 1)),
            ("/tmp/x.sock", .unix(path: "/tmp/x.sock")),
            ("./x.sock", .unix(path: "./x.sock")),
            ("../x.sock", .unix(path: "../x.sock")),
        ]

        @Test(arguments: canonical)
        func validAddressParsesAndRoundTripsThroughDescription(_ text: String, _ expected: SocketAddress) throws {
            let address = try SocketAddress(text)
            #expect(address == expected)
            #expect(address.description == text)
            #expect(try SocketAddress(address.description) == address)
        }

        @Test func nonCanonicalSpellingsParseToTheSameAddress() throws {
            #expect(try SocketAddress("[0:0:0:0:0:0:0:1]:80") == .ipv6(.loopback, port: 80))
            #expect(try SocketAddress("127.0.0.1:00080") == .ipv4(.loopback, port: 80))
            #expect(try SocketAddress("unix:rel.sock") == .unix(path: "rel.sock"))
            #expect(try SocketAddress("[fe80::1%lo]:80") == .ipv6(IPv6Address("fe80::1")!, port: 80, scopeID: 1))
        }

        /// Every address that parses prints as text that parses back to it, including a
        /// relative Unix path given as "unix:…" (exposes bug 5 in /tmp/brief/BUGS.md).
        @Test(arguments: ["unix:rel.sock", "unix:dir/rel.sock", "unix:/abs.sock", "[0:0:0:0:0:0:0:1]:80", "127.0.0.1:00080"])
        func everyParsedAddressRoundTripsThroughDescription(_ text: String) throws {
            let address = try SocketAddress(text)
            #expect(try SocketAddress(address.description) == address, "\(text) prints as \(address.description)")
        }

        @Test func unixPathLengthLimitIs107Bytes() throws {
            #expect(SocketAddress.maximumUnixPathLength == 107)
            let longest = "/" + String(repeating: "a", count: 106)
            #expect(try SocketAddress(longest) == .unix(path: longest))
            #expect(throws: TorusError.self) { try SocketAddress(longest + "a") }
            // Multi-byte characters count in bytes, not characters.
            let wide = "/" + String(repeating: "é", count: 54)   // 109 bytes
            #expect(throws: TorusError.self) { try SocketAddress(wide) }
        }

        @Test func hostInitializerTakesOnlyIPLiterals() throws {
            #expect(try SocketAddress(host: "127.0.0.1", port: 1) == .ipv4(.loopback, port: 1))
            #expect(try SocketAddress(host: "::1", port: 2) == .ipv6(.loopback, port: 2))
            for host in ["localhost", "", "[::1]", "1.2.3.4:80"] {
                #expect(throws: TorusError.self, "\(host)") { try SocketAddress(host: host, port: 80) }
            }
        }

        @Test func portAndWithPort() {
            let v4 = SocketAddress.ipv4(.loopback, port: 1)
            #expect(v4.port == 1)
            #expect(v4.withPort(2) == .ipv4(.loopback, port: 2))
            let v6 = SocketAddress.ipv6(.loopback, port: 1, scopeID: 3)
            #expect(v6.withPort(9) == .ipv6(.loopback, port: 9, scopeID: 3))
            let unix = SocketAddress.unix(path: "/tmp/s")
            #expect(unix.port == nil)
            #expect(unix.withPort(5) == unix)
        }

        @Test func ipLiteralsParseAndPrint() {
            #expect(IPv4Address("127.0.0.1") == .loopback)
            #expect(IPv4Address("0.0.0.0") == .any)
            #expect(IPv4Address("256.0.0.1") == nil)
            #expect(IPv4Address("::1") == nil)
            #expect(IPv6Address("::1") == .loopback)
            #expect(IPv6Address("::") == .any)
            #expect(IPv6Address("1.2.3.4") == nil)
            #expect(IPv4Address(192, 168, 0, 1).description == "192.168.0.1")
            #expect(IPv6Address("2001:DB8:0:0:0:0:0:1")!.description == "2001:db8::1")
        }

        @Test func resolvingLocalhostGivesALoopbackAddress() async throws {
            let addresses = try await SocketAddress.resolve(host: "localhost", port: 4242)
            #expect(!addresses.isEmpty)
            #expect(addresses.allSatisfy { $0.port == 4242 })
            #expect(addresses.contains { address in
                switch address {
                case .ipv4(let host, _): host.description.hasPrefix("127.")
                case .ipv6(let host, _, _): host == .loopback
                case .unix: false
                }
            }, "\(addresses)")
        }

        @Test func resolvingIPLiteralReturnsItWithoutLookup() async throws {
            #expect(try await SocketAddress.resolve(host: "::1", port: 7) == [.ipv6(.loopback, port: 7)])
            #expect(try await SocketAddress.resolve(host: "127.0.0.1", port: 7) == [.ipv4(.loopback, port: 7)])
        }

        @Test func resolvingUnknownHostThrowsHostNotFound() async throws {
            let error = await expectTorusError(.hostNotFound) {
                try await SocketAddress.resolve(host: "no-such-host.invalid", port: 80)
            }
            #expect(error?.operation == .resolve)
            #expect(error?.detail?.contains("no-such-host.invalid") == true)
        }

        @Test func torusErrorDescriptionNamesOperationKindAndAddress() {
            let error = TorusError(.connectionRefused, operation: .connect, errno: 111,
                                   address: .ipv4(.loopback, port: 9), detail: "extra")
            #expect(error.description.contains("connect"))
            #expect(error.description.contains("connection refused"))
            #expect(error.description.contains("127.0.0.1:9"))
            #expect(error.description.contains("extra"))
        }
    }
}
