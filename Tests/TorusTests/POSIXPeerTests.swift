import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Torus against an independent peer: blocking POSIX sockets on plain pthreads, with no
    /// Swift concurrency and no Torus code on the other side.
    @Suite(.noDescriptorLeaks)
    struct POSIXPeerTests {
        @Test func posixClientThreadsGetTheirEchoFromTorusServer() async throws {
            let payloads = (0..<4).map { randomBytes(512 * 1024 + $0 * 1000) }
            let results = try await withEchoServer { address in
                let port = address.port!
                return await withTaskGroup(of: (Int, Result<[UInt8], POSIXError>).self) { group in
                    for (index, payload) in payloads.enumerated() {
                        group.addTask {
                            (index, await onPOSIXThread { posixEchoClient(port: port, payload: payload) })
                        }
                    }
                    var results: [Int: Result<[UInt8], POSIXError>] = [:]
                    for await (index, result) in group { results[index] = result }
                    return results
                }
            }
            for (index, payload) in payloads.enumerated() {
                switch results[index] {
                case .success(let echoed): expectSameBytes(echoed, payload, "client \(index)'s echo")
                case .failure(let error): Issue.record("POSIX client \(index): \(error)")
                case nil: Issue.record("POSIX client \(index) reported nothing")
                }
            }
        }

        @Test func torusClientGetsItsEchoFromPOSIXServerThread() async throws {
            let listener = try RawSocket.listening()
            defer { listener.close() }
            let payload = randomBytes(4 << 20)

            async let served = onPOSIXThread { posixEchoServer(listener) }
            let connection = try await Connection.connect(to: .ipv4(.loopback, port: listener.port))
            do {
                // Write and read at the same time: the POSIX server echoes with blocking calls,
                // so a client that only wrote would stall once the buffers are full.
                async let echoed = connection.readToEnd()
                try await connection.write(payload)
                try await connection.shutdown(.write)
                expectSameBytes(try await echoed, payload)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
            #expect(try await served.get() == payload.count)
        }

        @Test func posixClientHalfCloseGetsTorusServerReply() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let port = listener.localAddress.port!
            let request = randomBytes(100_000)
            async let clientResult = onPOSIXThread { () -> Result<[UInt8], POSIXError> in
                do {
                    let socket = try RawSocket.connected(toLoopbackPort: port)
                    defer { socket.close() }
                    try socket.sendAll(request)
                    socket.shutdownWrite()
                    var reply: [UInt8] = []
                    while true {
                        let chunk = try socket.receive()
                        if chunk.isEmpty { return .success(reply) }
                        reply.append(contentsOf: chunk)
                    }
                } catch let error as POSIXError {
                    return .failure(error)
                } catch {
                    fatalError("\(error)")
                }
            }
            let connection = try #require(try await listener.accept())
            await listener.close()
            let received = try await connection.readToEnd()
            expectSameBytes(received, request, "request")
            try await connection.write("got \(received.count) bytes")
            await connection.close()
            let reply = try await clientResult.get()
            #expect(String(decoding: reply, as: UTF8.self) == "got \(request.count) bytes")
        }

        @Test func posixServerResetSurfacesAsConnectionResetOnTorusClient() async throws {
            let listener = try RawSocket.listening()
            defer { listener.close() }
            async let resetter = onPOSIXThread { () -> Result<Void, POSIXError> in
                do {
                    let peer = try listener.accept()
                    // Wait for the client's hello, then reset.
                    _ = try peer.receive()
                    try peer.setLingerZero()
                    peer.close()
                    return .success(())
                } catch let error as POSIXError {
                    return .failure(error)
                } catch {
                    fatalError("\(error)")
                }
            }
            let connection = try await Connection.connect(to: .ipv4(.loopback, port: listener.port))
            try await connection.write("hello")
            await expectTorusError(.connectionReset) {
                // The reset may arrive before or during the read.
                while try await connection.read() != nil {}
            }
            try await resetter.get()
            await connection.close()
        }
    }
}

/// A blocking POSIX echo client: connects to 127.0.0.1:`port`, sends `payload` while reading
/// the echo (`poll`), shuts its write side down after the last byte, and returns everything
/// read until end of stream.
func posixEchoClient(port: UInt16, payload: [UInt8]) -> Result<[UInt8], POSIXError> {
    let socket: RawSocket
    do { socket = try RawSocket.connected(toLoopbackPort: port) } catch let error as POSIXError {
        return .failure(error)
    } catch { fatalError("\(error)") }
    defer { socket.close() }
    var received: [UInt8] = []
    received.reserveCapacity(payload.count)
    var buffer = [UInt8](repeating: 0, count: 65536)
    var sent = 0
    var shutDown = false
    while true {
        var events = Int32(POLLIN)
        if !shutDown { events |= Int32(POLLOUT) }
        let ready = socket.poll(events, milliseconds: 10_000)
        if ready == 0 { return .failure(POSIXError("poll (stalled)", errno: ETIMEDOUT)) }
        if ready & Int16(POLLOUT) != 0, !shutDown {
            let count = payload.withUnsafeBytes { raw in
                send(socket.fd, raw.baseAddress! + sent, min(65536, raw.count - sent), Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count < 0, errno != EAGAIN, errno != EINTR { return .failure(POSIXError("send")) }
            if count > 0 { sent += count }
            if sent == payload.count {
                socket.shutdownWrite()
                shutDown = true
            }
        }
        if ready & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            let count = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 { return .success(received) }
            if count < 0, errno != EAGAIN, errno != EINTR { return .failure(POSIXError("recv")) }
            if count > 0 { received.append(contentsOf: buffer[..<count]) }
        }
    }
}

/// A blocking POSIX echo server for one connection: accepts, echoes until end of stream,
/// closes, and returns the number of bytes echoed.
func posixEchoServer(_ listener: RawSocket) -> Result<Int, POSIXError> {
    do {
        let peer = try listener.accept()
        defer { peer.close() }
        var total = 0
        while true {
            let chunk = try peer.receive()
            if chunk.isEmpty { return .success(total) }
            try peer.sendAll(chunk)
            total += chunk.count
        }
    } catch let error as POSIXError {
        return .failure(error)
    } catch {
        fatalError("\(error)")
    }
}
