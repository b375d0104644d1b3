import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Listener lifecycle: closing ends iteration, accepting after close, port 0.
    @Suite(.noDescriptorLeaks)
    struct ListenerTests {
        @Test func closingListenerEndsRunningForAwaitLoopNormally() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let (served, servedContinuation) = AsyncStream.makeStream(of: Void.self)
            let loop = Task {
                var count = 0
                for try await connection in listener {
                    count += 1
                    await connection.close()
                    servedContinuation.yield()
                }
                return count   // reached only if the loop ends normally
            }

            // The loop is running: it serves one connection, then waits for the next.
            let client = try await Connection.connect(to: listener.localAddress)
            var iterator = served.makeAsyncIterator()
            await iterator.next()
            #expect(try await client.read() == nil, "the loop closed the server side")
            await client.close()

            await listener.close()
            #expect(try await loop.value == 1)
        }

        @Test func closingListenerEndsEveryWaitingAccept() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let waiters = (0..<3).map { _ in Task { try await listener.accept() } }
            try await letTaskReachItsWait()
            await listener.close()
            for waiter in waiters {
                #expect(try await waiter.value == nil)
            }
            // Accepting after close keeps answering nil, and closing again is harmless.
            #expect(try await listener.accept() == nil)
            await listener.close()
        }

        @Test func connectionsQueuedButNotAcceptedAreClosedWithListener() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            var clients: [Connection] = []
            for _ in 0..<3 { clients.append(try await Connection.connect(to: listener.localAddress)) }
            // Nobody accepts; closing the listener must close (reset or end) each of them.
            await listener.close()
            for client in clients {
                do {
                    #expect(try await client.read(timeout: .seconds(5)) == nil)
                } catch let error as TorusError {
                    #expect(error.kind == .connectionReset, "\(error)")
                }
                await client.close()
            }
        }

        @Test func listenerOnPortZeroReportsTheChosenPort() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let port = try #require(listener.localAddress.port)
            #expect(port != 0)
            #expect(listener.localAddress == .ipv4(.loopback, port: port))
            // A raw client reaches it on that port.
            let raw = try RawSocket.connected(toLoopbackPort: port)
            let connection = try #require(try await listener.accept())
            #expect(connection.localAddress.port == port)
            try raw.sendAll([42])
            #expect(try await connection.read() == [42])
            raw.close()
            #expect(try await connection.read() == nil)
            await connection.close()
            await listener.close()
        }
    }
}
