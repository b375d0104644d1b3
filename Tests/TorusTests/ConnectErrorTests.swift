import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Connecting and listening where it cannot work.
    @Suite(.noDescriptorLeaks)
    struct ConnectErrorTests {
        @Test func connectToPortWithoutListenerIsRefused() async throws {
            // Bound but not listening: the port is ours, and the kernel answers SYNs with RST.
            let bound = try RawSocket.boundToLoopback()
            defer { bound.close() }
            let address = SocketAddress.ipv4(.loopback, port: bound.port)
            let error = await expectTorusError(.connectionRefused) {
                try await Connection.connect(to: address)
            }
            #expect(error?.address == address)
            #expect(error?.operation == .connect)
            #expect(error?.errno == ECONNREFUSED)
        }

        @Test func connectByHostNameReportsRefusalOfTheLastAddress() async throws {
            let bound = try RawSocket.boundToLoopback()
            defer { bound.close() }
            let error = await expectTorusError(.connectionRefused) {
                try await Connection.connect(host: "localhost", port: bound.port)
            }
            #expect(error?.address?.port == bound.port)
        }

        @Test func connectToUnknownHostThrowsHostNotFound() async throws {
            await expectTorusError(.hostNotFound) {
                try await Connection.connect(host: "no-such-host.invalid", port: 80)
            }
        }

        @Test func connectToMissingUnixSocketFails() async throws {
            try await withTemporaryDirectory { directory in
                let address = SocketAddress.unix(path: directory + "/nobody-here.sock")
                let error = await torusError { try await Connection.connect(to: address) }
                #expect(error?.errno == ENOENT, "\(String(describing: error))")
                #expect(error?.address == address)
            }
        }

        @Test func connectTimesOutWhenPeerNeverAnswers() async throws {
            let target = try UnresponsiveListener()
            defer { target.close() }
            let address = SocketAddress.ipv4(.loopback, port: target.port)
            let start = ContinuousClock.now
            let error = await expectTorusError(.timedOut) {
                try await Connection.connect(to: address, timeout: .milliseconds(200))
            }
            let elapsed = ContinuousClock.now - start
            #expect(error?.address == address)
            #expect(error?.operation == .connect)
            #expect(elapsed >= .milliseconds(190), "gave up before the timeout: \(elapsed)")
            #expect(elapsed < .seconds(5), "took \(elapsed)")
        }

        @Test(arguments: [false, true])
        func secondListenerOnSamePortThrowsAddressInUse(ipv6: Bool) async throws {
            let any: SocketAddress = ipv6 ? .ipv6(.loopback, port: 0) : .ipv4(.loopback, port: 0)
            let first = try await Listener(bindingTo: any)
            let taken = first.localAddress
            var options = Listener.Options()
            options.reusePort = false
            let error = await expectTorusError(.addressInUse) {
                try await Listener(bindingTo: taken, options: options)
            }
            #expect(error?.operation == .bind)
            #expect(error?.address == taken)
            await first.close()

            // Once the first is closed, the port is free again.
            let again = try await Listener(bindingTo: taken, options: options)
            #expect(again.localAddress == taken)
            await again.close()
        }

        @Test func secondListenerOnSameUnixPathThrowsAddressInUse() async throws {
            try await withTemporaryDirectory { directory in
                let address = SocketAddress.unix(path: directory + "/taken.sock")
                let first = try await Listener(bindingTo: address)
                await expectTorusError(.addressInUse) { try await Listener(bindingTo: address) }
                await first.close()
                let again = try await Listener(bindingTo: address)
                await again.close()
            }
        }

        @Test func listenerOnOverlongUnixPathThrowsInvalidAddress() async throws {
            let path = "/tmp/" + String(repeating: "x", count: SocketAddress.maximumUnixPathLength)
            await expectTorusError(.invalidAddress) { try await Listener(bindingTo: .unix(path: path)) }
            await expectTorusError(.invalidAddress) { try await Connection.connect(to: .unix(path: path)) }
        }
    }
}
