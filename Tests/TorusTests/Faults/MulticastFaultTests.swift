import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Multicast between the test hosts: a group joined on the client's end of the veth link
    /// receives what the server's host sends to it (IPv4 and IPv6, the sender's address
    /// given), and a datagram this host sends to a group reaches a member on the other side.
    /// Loopback cannot show this: there the sender and the member share one interface.
    @Suite(.enabled(if: FaultHosts.unavailableReason == nil, Comment(rawValue: FaultHosts.unavailableReason ?? "")),
           .noDescriptorLeaks)
    struct MulticastFaultTests {
        /// The client's end of the link, where this process joins groups.
        static let clientInterface = "torus-c0"

        init() async throws {
            try await FaultHosts.inject(nil)
        }

        @Test(arguments: [
            (group: "239.203.0.1", server: "\(FaultHosts.server)", port: UInt16(9211)),
            (group: "ff05::203:1", server: "\(FaultHosts.serverV6)", port: UInt16(9212)),
        ])
        func aJoinedGroupReceivesWhatTheOtherHostSends(group: String, server: String, port: UInt16) async throws {
            let interface = if_nametoindex(Self.clientInterface)
            try #require(interface != 0, "no interface \(Self.clientInterface) in this namespace")
            let isIPv6 = group.contains(":")
            let socket = try await DatagramSocket(
                bindingTo: isIPv6 ? .ipv6(.any, port: port) : .ipv4(.any, port: port),
                options: .init(reuseAddress: true))
            if isIPv6 {
                try await socket.joinMulticastGroup(try #require(IPv6Address(group)), interfaceIndex: interface)
            } else {
                try await socket.joinMulticastGroup(try #require(IPv4Address(group)), interfaceIndex: interface)
            }
            // Sent from the server's host out of its end of the link, one every 10 ms, so that
            // none overruns a receive buffer; no loss is injected, so every one must arrive.
            let count = 20
            let sender = try FaultHosts.inServer("python3 -c '\(Self.sender(group: group, port: port, count: count))'")
            var received: [String] = []
            while received.count < count, let datagram = try? await socket.read(timeout: .seconds(5)) {
                #expect(Self.host(of: datagram.sender) == server, "a datagram from \(datagram.sender)")
                received.append(String(decoding: datagram.bytes, as: UTF8.self))
            }
            #expect(received == (0..<count).map { "multicast \($0)" }, "\(sender.outputText)")
            #expect(await onPOSIXThread { sender.finish(timeout: .seconds(10)) } == .exited(0), "\(sender.outputText)")
            await socket.close()
        }

        @Test func aDatagramSentToAGroupReachesAMemberOnTheOtherHost() async throws {
            let interface = if_nametoindex(Self.clientInterface)
            try #require(interface != 0, "no interface \(Self.clientInterface) in this namespace")
            let group = IPv4Address(239, 203, 0, 2)
            let port: UInt16 = 9213
            // A member of the group on the server's host, answering each datagram to its sender.
            let member = try await FaultHosts.startPeer(port: port, "python3 -c '\(Self.member(group: "\(group)", port: port))'")
            let socket = try await DatagramSocket(bindingTo: .ipv4(FaultHosts.client, port: 0))
            // Out of the link's end (there is no multicast route), one hop is enough.
            try await socket.setMulticastInterface(interface)
            for sequence in 0..<10 {
                try await socket.send("to the group \(sequence)", to: .ipv4(group, port: port))
                let reply = try await socket.read(timeout: .seconds(5))
                #expect(String(decoding: reply.bytes, as: UTF8.self) == "member got: to the group \(sequence)")
                #expect(reply.sender == .ipv4(FaultHosts.server, port: port))
            }
            await socket.close()
            _ = member
        }

        /// The address of `address` without its port, as text.
        static func host(of address: SocketAddress) -> String {
            switch address {
            case .ipv4(let host, _): "\(host)"
            case .ipv6(let host, _, _): "\(host)"
            case .unix(let path): path
            }
        }

        /// A Python program that sends `count` numbered datagrams to `group` out of the server's
        /// end of the link. No single quotes: it is passed in them.
        static func sender(group: String, port: UInt16, count: Int) -> String {
            let isIPv6 = group.contains(":")
            return """
                import socket, time
                s = socket.socket(socket.AF_INET6 if \(isIPv6 ? "True" : "False") else socket.AF_INET, socket.SOCK_DGRAM)
                if \(isIPv6 ? "True" : "False"):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("torus-s0"))
                else:
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("\(FaultHosts.server)"))
                for i in range(\(count)):
                    s.sendto(b"multicast %d" % i, ("\(group)", \(port)))
                    time.sleep(0.01)
                """
        }

        /// A Python program that joins `group` on the server's end of the link and answers
        /// each datagram to its sender.
        static func member(group: String, port: UInt16) -> String {
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("\(group)", \(port)))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("\(group)") + socket.inet_aton("\(FaultHosts.server)"))
            print("member listening on \(group):\(port)", flush=True)
            s.settimeout(30)
            while True:
                data, sender = s.recvfrom(2048)
                s.sendto(b"member got: " + data, sender)
            """
        }
    }
}
