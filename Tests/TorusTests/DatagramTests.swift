import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// UDP: round trips over IPv4 and IPv6, many datagrams from several senders, truncation,
    /// an independent POSIX peer.
    @Suite(.noDescriptorLeaks)
    struct DatagramTests {
        @Test func roundTripOverIPv4ReportsSenderAndBytes() async throws {
            try await withDatagramEchoServer { server in
                let client = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
                guard case .ipv4(_, let port) = client.localAddress else { throw TestFailure("not IPv4: \(client.localAddress)") }
                #expect(port != 0, "port 0 must become the real port")
                let payload = randomBytes(1200, seed: 4)
                try await client.send(payload, to: server)
                let echo = try await client.read(timeout: .seconds(10))
                expectSameBytes(echo.bytes, payload)
                #expect(echo.sender == server)
                #expect(!echo.isTruncated)
                #expect(echo.originalCount == payload.count)
                await client.close()
            }
        }

        @Test func roundTripOverIPv6() async throws {
            try await withDatagramEchoServer(on: .ipv6(.loopback, port: 0)) { server in
                let client = try await DatagramSocket(bindingTo: .ipv6(.loopback, port: 0))
                try await client.send("hello over IPv6", to: server)
                let echo = try await client.receive(timeout: .seconds(10))
                #expect(echo.bytes.array == Array("hello over IPv6".utf8))
                #expect(echo.sender == server)
                await client.close()
            }
        }

        @Test func emptyDatagramIsDelivered() async throws {
            try await withDatagramEchoServer { server in
                let client = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
                try await client.send([UInt8](), to: server)
                try await client.send("after", to: server)
                let first = try await client.read(timeout: .seconds(10))
                let second = try await client.read(timeout: .seconds(10))
                // Loopback keeps order for one sender; an empty datagram is still a datagram.
                #expect(first.bytes.isEmpty && !first.isTruncated)
                #expect(second.bytes == Array("after".utf8))
                await client.close()
            }
        }

        @Test func dualStackSocketTalksToIPv4Peers() async throws {
            let server = try await DatagramSocket(bindingTo: .ipv6(.any, port: 0), options: .init(ipv6Only: false))
            let client = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            try await client.send("mapped", to: .ipv4(.loopback, port: server.localAddress.port!))
            let received = try await server.read(timeout: .seconds(10))
            #expect(received.bytes == Array("mapped".utf8))
            // The sender shows up IPv4-mapped; replying to it, or to the plain IPv4 address,
            // reaches the IPv4 client.
            guard case .ipv6(let host, let port, _) = received.sender else {
                throw TestFailure("expected an IPv4-mapped IPv6 sender, got \(received.sender)")
            }
            #expect(host == IPv6Address("::ffff:127.0.0.1"))
            #expect(port == client.localAddress.port)
            try await server.send("reply 1", to: received.sender)
            try await server.send("reply 2", to: client.localAddress)
            #expect(try await client.read(timeout: .seconds(10)).bytes == Array("reply 1".utf8))
            #expect(try await client.read(timeout: .seconds(10)).bytes == Array("reply 2".utf8))
            await client.close()
            await server.close()
        }

        /// 10,000 datagrams from 4 senders, each keeping at most `window` unacknowledged, so
        /// the receiver's socket buffer never overflows and nothing is lost on loopback. Every
        /// datagram is checked by content; no order is assumed.
        @Test func tenThousandDatagramsFromSeveralSendersArriveIntact() async throws {
            let senders = 4
            let perSender = 2500
            let window = 16
            let receiver = try await DatagramSocket(
                bindingTo: .ipv4(.loopback, port: 0), options: .init(receiveBufferSize: 4 << 20))
            let target = receiver.localAddress
            let receiving = Task {
                try await receiver.withIsolation { receiver -> (count: Int, bad: Int, duplicates: Int) in
                    var seen = Set<UInt32>()
                    var bad = 0
                    var duplicates = 0
                    while seen.count + duplicates + bad < senders * perSender {
                        let datagram = try await receiver.receive(timeout: .seconds(20))
                        let key = datagram.withUnsafeBytes { bytes -> UInt32? in
                            guard let (sender, sequence) = tag(of: bytes) else { return nil }
                            let expected = tagged(sender: sender, sequence: sequence, size: bytes.count)
                            return expected.withUnsafeBytes { $0.elementsEqual(bytes) } ? UInt32(sender) << 24 | sequence : nil
                        }
                        guard let key else { bad += 1; continue }
                        if !seen.insert(key).inserted { duplicates += 1 }
                        // The acknowledgement: the 5-byte header.
                        try await datagram.bytes.withUnsafeBytes { try await receiver.send(UnsafeRawBufferPointer(rebasing: $0[..<5]), to: datagram.sender) }
                    }
                    return (seen.count, bad, duplicates)
                }
            }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for sender in 0..<senders {
                    group.addTask {
                        let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
                        return try await socket.withIsolation { socket in
                            var inFlight = 0
                            var acknowledged = 0
                            for sequence in 0..<perSender {
                                if inFlight == window {
                                    _ = try await socket.receive(timeout: .seconds(20))
                                    inFlight -= 1
                                    acknowledged += 1
                                }
                                let size = 5 + (sequence * 37 + sender * 11) % 700
                                try await socket.send(tagged(sender: UInt8(sender), sequence: UInt32(sequence), size: size), to: target)
                                inFlight += 1
                            }
                            while inFlight > 0 {
                                _ = try await socket.receive(timeout: .seconds(20))
                                inFlight -= 1
                                acknowledged += 1
                            }
                            await socket.close()
                            return acknowledged
                        }
                    }
                }
                var acknowledged = 0
                for try await count in group { acknowledged += count }
                #expect(acknowledged == senders * perSender)
            }
            let (count, bad, duplicates) = try await receiving.value
            #expect(count == senders * perSender)
            #expect(bad == 0)
            #expect(duplicates == 0)
            await receiver.close()
        }

        @Test func datagramLargerThanReceiveBufferIsReportedTruncated() async throws {
            let receiver = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let sender = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let limit = receiver.maximumReceiveSize
            #expect(limit > 1000 && limit < 65536)
            let fits = randomBytes(limit, seed: 1)
            let tooLarge = randomBytes(limit + 1000, seed: 2)
            try await sender.send(fits, to: receiver.localAddress)
            try await sender.send(tooLarge, to: receiver.localAddress)
            let whole = try await receiver.receive(timeout: .seconds(10))
            let wholeIsTruncated = whole.isTruncated
            #expect(!wholeIsTruncated)
            expectSameBytes(whole.bytes.array, fits)
            let cut = try await receiver.read(timeout: .seconds(10))
            #expect(cut.isTruncated)
            #expect(cut.originalCount == tooLarge.count)
            expectSameBytes(cut.bytes, Array(tooLarge[..<limit]), "the part that fit")
            await sender.close()
            await receiver.close()
        }

        @Test func sendingMoreThanTheLargestDatagramThrowsMessageTooLong() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let error = await expectTorusError(.messageTooLong) {
                try await socket.send([UInt8](repeating: 7, count: 70_000), to: socket.localAddress)
            }
            #expect(error?.errno == EMSGSIZE)
            #expect(error?.operation == .send)
            // The largest IPv4 UDP payload still goes (and arrives truncated, flagged).
            try await socket.send([UInt8](repeating: 7, count: 65_507), to: socket.localAddress)
            let received = try await socket.read(timeout: .seconds(10))
            #expect(received.isTruncated && received.originalCount == 65_507)
            await socket.close()
        }

        @Test func independentPOSIXPeerExchangesDatagramsWithTorus() async throws {
            let peer = try RawDatagramSocket.bound()
            defer { peer.close() }
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let torusPort = socket.localAddress.port!
            // The peer echoes three datagrams on a plain thread, then sends one of its own.
            let peerThread = Task {
                await onPOSIXThread { () -> String? in
                    do {
                        for _ in 0..<3 {
                            let (bytes, port) = try peer.receive()
                            guard port == torusPort else { return "datagram from port \(port), not \(torusPort)" }
                            try peer.send(bytes, toLoopbackPort: port)
                        }
                        try peer.send(Array("from the peer".utf8), toLoopbackPort: torusPort)
                        return nil
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var sent: [[UInt8]] = []
            for index in 0..<3 {
                let payload = randomBytes(100 + index * 500, seed: UInt64(index))
                sent.append(payload)
                try await socket.send(payload, to: .ipv4(.loopback, port: peer.port))
            }
            for index in 0..<3 {
                let echo = try await socket.read(timeout: .seconds(10))
                #expect(echo.sender == .ipv4(.loopback, port: peer.port))
                expectSameBytes(echo.bytes, sent[index], "echo \(index)")
            }
            let own = try await socket.read(timeout: .seconds(10))
            #expect(own.bytes == Array("from the peer".utf8))
            #expect(await peerThread.value == nil)
            await socket.close()
        }

        @Test func iteratingASocketYieldsDatagramsAndEndsWhenClosed() async throws {
            let server = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let serving = Task {
                var count = 0
                for try await datagram in server {
                    count += 1
                    try await server.send(datagram.bytes, to: datagram.sender)
                }
                return count
            }
            let client = try await DatagramSocket.connect(to: server.localAddress)
            for word in ["one", "two", "three"] {
                try await client.send(word)
                #expect(try await client.read(timeout: .seconds(10)).bytes == Array(word.utf8))
            }
            await server.close()
            #expect(try await serving.value == 3)
            await client.close()
        }

        @Test func connectedSocketSendsAndReceivesWithoutAddressesAndIgnoresOthers() async throws {
            let peer = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let stranger = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let socket = try await DatagramSocket.connect(to: peer.localAddress)
            #expect(await socket.remoteAddress == peer.localAddress)
            try await socket.send("to the peer")
            let atPeer = try await peer.read(timeout: .seconds(10))
            #expect(atPeer.bytes == Array("to the peer".utf8))
            // A connected socket only receives from its peer: the stranger's datagram is
            // dropped by the kernel, the peer's (sent after it) arrives.
            try await stranger.send("from a stranger", to: atPeer.sender)
            try await peer.send("from the peer", to: atPeer.sender)
            let received = try await socket.read(timeout: .seconds(10))
            #expect(received.bytes == Array("from the peer".utf8))
            #expect(received.sender == peer.localAddress)
            await socket.close()
            await stranger.close()
            await peer.close()
        }
    }
}
