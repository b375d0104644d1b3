import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// UDP options (multicast, broadcast, buffer sizes) and receive-buffer sharing.
    @Suite(.noDescriptorLeaks)
    struct DatagramOptionTests {
        @Test func multicastOverIPv4LoopbackReachesGroupMembers() async throws {
            let loopback = try #require(DatagramSocket.interfaceIndex(named: "lo"))
            let group = IPv4Address(239, 255, 42, 99)
            let member = try await DatagramSocket(bindingTo: .ipv4(.any, port: 0), options: .init(reuseAddress: true))
            let sender = try await DatagramSocket(bindingTo: .ipv4(.any, port: 0))
            do {
                try await member.joinMulticastGroup(group, interfaceIndex: loopback)
                try await sender.setMulticastInterface(loopback)
                try await sender.setMulticastLoop(true)
                try await sender.setMulticastHops(1)
                try await sender.send("to the group", to: .ipv4(group, port: member.localAddress.port!))
            } catch let error as TorusError where error.kind == .unreachable || error.kind == .addressNotAvailable || error.errno == ENODEV {
                // Some sandboxes give the loopback interface no multicast at all.
                print("DatagramOptionTests: IPv4 multicast on loopback unavailable here: \(error)")
                withKnownIssue("IPv4 multicast on loopback refused by this kernel: \(error)") { throw error }
                await member.close()
                await sender.close()
                return
            }
            let received = try await member.read(timeout: .seconds(10))
            #expect(received.bytes == Array("to the group".utf8))
            #expect(received.sender.port == sender.localAddress.port)
            // After leaving, the group's datagrams no longer arrive; a direct one does.
            try await member.leaveMulticastGroup(group, interfaceIndex: loopback)
            try await sender.send("to the group again", to: .ipv4(group, port: member.localAddress.port!))
            try await sender.send("direct", to: .ipv4(.loopback, port: member.localAddress.port!))
            #expect(try await member.read(timeout: .seconds(10)).bytes == Array("direct".utf8))
            await member.close()
            await sender.close()
        }

        @Test func multicastOverIPv6LoopbackReachesGroupMembers() async throws {
            let loopback = try #require(DatagramSocket.interfaceIndex(named: "lo"))
            let group = try #require(IPv6Address("ff12::4242"))
            let member = try await DatagramSocket(bindingTo: .ipv6(.any, port: 0), options: .init(reuseAddress: true, ipv6Only: true))
            let sender = try await DatagramSocket(bindingTo: .ipv6(.any, port: 0), options: .init(ipv6Only: true))
            do {
                try await member.joinMulticastGroup(group, interfaceIndex: loopback)
                try await sender.setMulticastInterface(loopback)
                try await sender.setMulticastLoop(true)
                try await sender.setMulticastHops(1)
            } catch {
                await member.close()
                await sender.close()
                throw error
            }
            do {
                try await sender.send("to the v6 group", to: .ipv6(group, port: member.localAddress.port!, scopeID: loopback))
            } catch let error as TorusError where error.kind == .unreachable {
                // Linux gives `lo` no MULTICAST flag and so no ff00::/8 route: IPv6 multicast
                // cannot leave through it (IPv4 multicast can). Recorded, not hidden.
                print("DatagramOptionTests: IPv6 multicast on loopback unavailable here: \(error)")
                withKnownIssue("IPv6 multicast has no route on the loopback interface: \(error)") { throw error }
                await member.close()
                await sender.close()
                return
            }
            let received = try await member.read(timeout: .seconds(10))
            #expect(received.bytes == Array("to the v6 group".utf8))
            try await member.leaveMulticastGroup(group, interfaceIndex: loopback)
            await member.close()
            await sender.close()
        }

        @Test func joiningANonMulticastAddressIsInvalidAddress() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.any, port: 0))
            await expectTorusError(.invalidAddress) { try await socket.joinMulticastGroup(IPv4Address(10, 1, 2, 3)) }
            await expectTorusError(.invalidAddress) { try await socket.joinMulticastGroup(IPv6Address("ff02::1")!) }
            await expectTorusError(.invalidArgument) { try await socket.setMulticastHops(256) }
            await socket.close()
        }

        @Test func bufferSizesAndBroadcastCanBeSet() async throws {
            let socket = try await DatagramSocket(
                bindingTo: .ipv4(.loopback, port: 0),
                options: .init(broadcast: true, receiveBufferSize: 256 * 1024, sendBufferSize: 128 * 1024))
            // The kernel doubles what it is given (for its bookkeeping).
            #expect(try await socket.receiveBufferSize() >= 256 * 1024)
            #expect(try await socket.sendBufferSize() >= 128 * 1024)
            try await socket.setReceiveBufferSize(64 * 1024)
            #expect(try await socket.receiveBufferSize() == 128 * 1024)
            try await socket.setBroadcast(false)
            await expectTorusError(.invalidArgument) { try await socket.setSendBufferSize(0) }
            await socket.close()
        }

        @Test func ipv6OnlySocketIgnoresIPv4() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv6(.any, port: 0), options: .init(ipv6Only: true))
            // Sending to an IPv4 address maps it, which an IPv6-only socket cannot reach.
            let error = await torusError { try await socket.send("x", to: .ipv4(.loopback, port: 9)) }
            #expect(error != nil)
            await socket.close()
        }

        /// A reader that falls behind holds at most its share of the loop's buffers; datagrams
        /// past it are copied out or wait in the kernel until the reader catches up, and
        /// nothing is lost or reordered (one sender, loopback).
        @Test func slowReaderKeepsItsShareAndLosesNothing() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let sender = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            // Start receiving, so that the multishot receive is armed before the burst.
            try await sender.send(tagged(sender: 1, sequence: 0, size: 64), to: socket.localAddress)
            var held: [HeldDatagram] = [HeldDatagram(try await socket.receive(timeout: .seconds(10)))]
            for sequence in 1..<100 {
                try await sender.send(tagged(sender: 1, sequence: UInt32(sequence), size: 64 + sequence), to: socket.localAddress)
            }
            for sequence in 1..<100 {
                let datagram = try await socket.receive(timeout: .seconds(10))
                let ok = datagram.withUnsafeBytes { bytes in
                    tag(of: bytes).map { $0.sequence == UInt32(sequence) } == true
                        && tagged(sender: 1, sequence: UInt32(sequence), size: 64 + sequence).withUnsafeBytes { $0.elementsEqual(bytes) }
                }
                #expect(ok, "datagram \(sequence)")
                // Keep a few (within the share, 16 by default): the rest still flows.
                if held.count < 8 { held.append(HeldDatagram(datagram)) }
            }
            held.removeAll()
            await sender.close()
            await socket.close()
        }

        /// With fewer buffers in the loop than datagrams held, the receive ends with ENOBUFS
        /// and is re-armed when a buffer comes back (no timer), and nothing is lost.
        @Test func receiveBufferExhaustionRecoversWhenBuffersComeBack() async throws {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferCount = 4
            configuration.receiveBuffersPerConnection = 16
            let group = try EventLoopGroup(loopCount: 1, configuration: configuration)
            let loop = group.loops[0]
            do {
                let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0), on: loop)
                let sender = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0), on: loop)
                try await sender.send(tagged(sender: 2, sequence: 0, size: 32), to: socket.localAddress)
                var held: [HeldDatagram] = [HeldDatagram(try await socket.receive(timeout: .seconds(10)))]
                for sequence in 1..<20 {
                    try await sender.send(tagged(sender: 2, sequence: UInt32(sequence), size: 32), to: socket.localAddress)
                }
                // Hold every buffer the loop has: the receive runs out, and must come back.
                for _ in 1..<4 { held.append(HeldDatagram(try await socket.receive(timeout: .seconds(10)))) }
                held.removeAll()
                var sequences: [UInt32] = []
                for _ in 4..<20 {
                    let datagram = try await socket.receive(timeout: .seconds(10))
                    sequences.append(datagram.withUnsafeBytes { tag(of: $0)?.sequence ?? 999 })
                }
                #expect(sequences == Array(4..<20))
                await sender.close()
                await socket.close()
            } catch {
                await group.shutdown()
                throw error
            }
            await group.shutdown()
        }
    }
}
