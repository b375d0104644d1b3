import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// UDP errors: refusal in connected mode, cancellation, timeouts, close, bad input.
    @Suite(.noDescriptorLeaks)
    struct DatagramErrorTests {
        /// Cancelling must take effect well within this.
        static let prompt: Duration = .seconds(2)

        /// A port on 127.0.0.1 nothing is bound to (it was, a moment ago).
        static func freePort() throws -> UInt16 {
            let socket = try RawDatagramSocket.bound()
            defer { socket.close() }
            return socket.port
        }

        /// Starts a receive on `socket` in another task and returns once it waits: the task's
        /// first job is queued on the socket's loop before the calls below, which the serial
        /// loop runs after it.
        static func startPendingReceive(on socket: DatagramSocket) async -> Task<Datagram, any Error> {
            let task = Task { try await socket.read() }
            for _ in 0..<4 { _ = await socket.isOpen }
            return task
        }

        @Test func connectedSocketReportsPortUnreachableAsConnectionRefused() async throws {
            let port = try Self.freePort()
            let socket = try await DatagramSocket.connect(to: .ipv4(.loopback, port: port))
            try await socket.send("anyone there?")
            let error = await expectTorusError(.connectionRefused) { _ = try await socket.receive(timeout: .seconds(10)) }
            #expect(error?.errno == ECONNREFUSED)
            // Reported once: the socket goes on working once someone listens there.
            let peer = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: port))
            try await socket.send("now?")
            let atPeer = try await peer.read(timeout: .seconds(10))
            #expect(atPeer.bytes == Array("now?".utf8))
            try await peer.send("yes", to: atPeer.sender)
            #expect(try await socket.read(timeout: .seconds(10)).bytes == Array("yes".utf8))
            await peer.close()
            await socket.close()
        }

        @Test func pendingReceiveOnConnectedSocketReportsTheRefusal() async throws {
            let port = try Self.freePort()
            let socket = try await DatagramSocket.connect(to: .ipv4(.loopback, port: port))
            // The refusal arrives while a receive waits: it ends that receive.
            let receiving = await Self.startPendingReceive(on: socket)
            try await socket.send("anyone there?")
            do {
                _ = try await receiving.value
                Issue.record("the receive returned a datagram nobody sent")
            } catch let error as TorusError {
                #expect(error.kind == .connectionRefused)
            }
            await socket.close()
        }

        @Test func cancellingPendingReceiveThrowsCancellationErrorAndSocketStaysUsable() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let receiving = await Self.startPendingReceive(on: socket)
            let start = ContinuousClock.now
            receiving.cancel()
            await #expect(throws: CancellationError.self) { _ = try await receiving.value }
            #expect(ContinuousClock.now - start < Self.prompt)
            try await socket.send("after the cancel", to: socket.localAddress)
            #expect(try await socket.read(timeout: .seconds(10)).bytes == Array("after the cancel".utf8))
            await socket.close()
        }

        @Test func receiveTimesOutAndSocketStaysUsable() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let start = ContinuousClock.now
            let error = await expectTorusError(.timedOut) { _ = try await socket.receive(timeout: .milliseconds(100)) }
            #expect(error?.operation == .receive)
            #expect(ContinuousClock.now - start >= .milliseconds(100))
            try await socket.send("late", to: socket.localAddress)
            #expect(try await socket.read(timeout: .seconds(10)).bytes == Array("late".utf8))
            await socket.close()
        }

        @Test func closeEndsPendingReceiveWithConnectionClosedAndIsIdempotent() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let receiving = await Self.startPendingReceive(on: socket)
            await socket.close()
            await socket.close()
            do {
                _ = try await receiving.value
                Issue.record("the receive returned after close")
            } catch let error as TorusError {
                #expect(error.kind == .connectionClosed)
            }
            #expect(await !socket.isOpen)
            await expectTorusError(.connectionClosed) { _ = try await socket.receive() }
            await expectTorusError(.connectionClosed) { try await socket.send("x", to: .ipv4(.loopback, port: 9)) }
            await expectTorusError(.connectionClosed) { try await socket.setBroadcast(true) }
        }

        @Test func secondConcurrentReceiveThrowsConcurrentRead() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let receiving = await Self.startPendingReceive(on: socket)
            await expectTorusError(.concurrentRead) { _ = try await socket.receive() }
            try await socket.send("for the first", to: socket.localAddress)
            #expect(try await receiving.value.bytes == Array("for the first".utf8))
            await socket.close()
        }

        @Test func unparsableAddressIsInvalidAddress() async throws {
            await expectTorusError(.invalidAddress) { try SocketAddress("300.1.2.3:7001") }
            await expectTorusError(.invalidAddress) { try SocketAddress("127.0.0.1:70000") }
            await expectTorusError(.invalidAddress) {
                try await DatagramSocket(bindingTo: .unix(path: "/tmp/torus-udp.sock"))
            }
        }

        @Test func sendingToAnIPv6AddressFromAnIPv4SocketIsInvalidAddress() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let error = await expectTorusError(.invalidAddress) { try await socket.send("x", to: .ipv6(.loopback, port: 7001)) }
            #expect(error?.address == .ipv6(.loopback, port: 7001))
            await expectTorusError(.invalidAddress) { try await socket.connect(to: .ipv6(.loopback, port: 7001)) }
            // Nothing broke: the socket still sends.
            try await socket.send("fine", to: socket.localAddress)
            #expect(try await socket.read(timeout: .seconds(10)).bytes == Array("fine".utf8))
            await socket.close()
        }

        @Test func bindingAPortInUseIsAddressInUse() async throws {
            let first = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let error = await expectTorusError(.addressInUse) {
                try await DatagramSocket(bindingTo: first.localAddress)
            }
            #expect(error?.address == first.localAddress)
            // With SO_REUSEPORT on both, sharing the port is allowed.
            let a = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0), options: .init(reusePort: true))
            let b = try await DatagramSocket(bindingTo: a.localAddress, options: .init(reusePort: true))
            #expect(b.localAddress == a.localAddress)
            await a.close()
            await b.close()
            await first.close()
        }

        @Test func sendingWithoutAddressOnUnconnectedSocketIsInvalidArgument() async throws {
            let socket = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            await expectTorusError(.invalidArgument) { try await socket.send("where to?") }
            await socket.close()
        }
    }
}
