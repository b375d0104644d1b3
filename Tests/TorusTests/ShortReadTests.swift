import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension OnLoop {
    /// On the loop: one receive of at most 64 bytes (`before`), then `peer` runs on the loop
    /// thread (so whatever it sends is queued before the loop next waits, and epoll reports it
    /// in one event), then two more receives, each bounded by `timeout`. Returns the three
    /// results and bytes.
    func receiveAround(
        _ fd: CInt, timeout: Duration, peer: @Sendable () -> Void
    ) async -> [(Int32, [UInt8])] {
        let first = await receive(fd, timeout: timeout)
        peer()
        let second = await receive(fd, timeout: timeout)
        let third = await receive(fd, timeout: timeout)
        return [first, second, third]
    }
}

extension TorusTests {
    /// A receive that gets fewer bytes than it had room for. The epoll engine takes it to
    /// mean the socket is drained (and waits for the next edge instead of reading again) only
    /// where that is true: a TCP socket whose peer has not closed and sent no urgent data.
    /// Each test would hang (here: time out) if a short read were trusted where it leaves
    /// something to read for which no edge comes. Run on both engines.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(1)))
    struct ShortReadTests {
        static let engines: [EventLoopGroup.EngineChoice] = [.ioUring, .epoll]

        /// The peer's last bytes and its FIN arrive together: one edge reports both, the read
        /// of the bytes is short, and the end of stream must still be read. (This was the
        /// hang of `EchoTests` when short reads were first trusted: a server's connection
        /// stayed in CLOSE-WAIT with nothing queued, its reader never told of the end.)
        @Test(arguments: engines)
        func endOfStreamArrivingWithTheLastBytesEndsTheStream(engine: EventLoopGroup.EngineChoice) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
            let listener = try RawSocket.listening()
            let connection: Connection
            do {
                connection = try await Connection.connect(to: .ipv4(.loopback, port: listener.port), on: group.loops[0])
            } catch {
                listener.close()
                throw error
            }
            let peer = try listener.accept()
            listener.close()
            try peer.sendAll(Array("first".utf8))
            let reads: [[UInt8]?]
            do {
                reads = try await connection.withIsolation { connection in
                    let first = try await connection.read(timeout: .seconds(5))
                    // On the loop thread: bytes and FIN are queued before the loop next waits.
                    try peer.sendAll(Array("last".utf8))
                    peer.shutdownWrite()
                    let last = try await connection.read(timeout: .seconds(5))
                    let end = try await connection.read(timeout: .seconds(5))
                    return [first, last, end]
                }
            } catch {
                await connection.close()
                peer.close()
                await group.shutdown()
                throw error
            }
            await connection.close()
            peer.close()
            await group.shutdown()
            #expect(reads == [Array("first".utf8), Array("last".utf8), nil])
        }

        /// The same with the engine's single-shot receive, between two raw TCP sockets.
        @Test(arguments: engines)
        func singleShotReceiveSeesEndOfStreamArrivingWithTheLastBytes(engine: EventLoopGroup.EngineChoice) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
            let listener = try RawSocket.listening()
            let local = try RawSocket.connected(toLoopbackPort: listener.port)
            let peer = try listener.accept()
            listener.close()
            // Non-blocking, as the loop's own sockets are on epoll.
            _ = fcntl(local.fd, F_SETFL, fcntl(local.fd, F_GETFL) | O_NONBLOCK)
            try peer.sendAll(Array("first".utf8))
            let results = await OnLoop(group.loops[0]).receiveAround(local.fd, timeout: .seconds(5)) {
                try? peer.sendAll(Array("last".utf8))
                peer.shutdownWrite()
            }
            #expect(results.map(\.0) == [5, 4, 0])
            #expect(results.map(\.1) == [Array("first".utf8), Array("last".utf8), []])
            local.close()
            peer.close()
            await group.shutdown()
        }

        /// TCP urgent data: a read stops short at the urgent mark, with bytes after it.
        @Test(arguments: engines)
        func shortReadAtTheUrgentMarkLeavesNothingBehind(engine: EventLoopGroup.EngineChoice) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
            let listener = try RawSocket.listening()
            let local = try RawSocket.connected(toLoopbackPort: listener.port)
            let peer = try listener.accept()
            listener.close()
            _ = fcntl(local.fd, F_SETFL, fcntl(local.fd, F_GETFL) | O_NONBLOCK)
            try peer.sendAll(Array("first".utf8))
            let results = await OnLoop(group.loops[0]).receiveAround(local.fd, timeout: .seconds(5)) {
                // "ab" then "!" as urgent data then "cd", all before the loop waits again.
                _ = send(peer.fd, "ab", 2, Int32(MSG_NOSIGNAL))
                _ = send(peer.fd, "!", 1, Int32(MSG_NOSIGNAL | MSG_OOB))
                _ = send(peer.fd, "cd", 2, Int32(MSG_NOSIGNAL))
            }
            // The urgent byte is out of band: the stream reads "ab", then "cd".
            #expect(results.map(\.0) == [5, 2, 2])
            #expect(results.map(\.1) == [Array("first".utf8), Array("ab".utf8), Array("cd".utf8)])
            local.close()
            peer.close()
            await group.shutdown()
        }

        /// A Unix stream read stops short after a message that carries descriptors, and a
        /// datagram read returns one datagram: neither short read means the socket is drained.
        @Test(arguments: engines, [SOCK_STREAM, SOCK_DGRAM])
        func shortReadsOfUnixSocketsLeaveNothingBehind(engine: EventLoopGroup.EngineChoice, type: __socket_type) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
            var pair: [CInt] = [-1, -1]
            try #require(socketpair(AF_UNIX, Int32(type.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
            let (local, peer) = (pair[0], pair[1])
            #expect(write(peer, "first", 5) == 5)
            let results = await OnLoop(group.loops[0]).receiveAround(local, timeout: .seconds(5)) {
                if type == SOCK_STREAM {
                    // "ab" carrying a descriptor (the peer's own), then "cd".
                    _ = sendWithDescriptor(peer, "ab", descriptor: peer)
                } else {
                    _ = write(peer, "ab", 2)
                }
                _ = write(peer, "cd", 2)
            }
            #expect(results.map(\.0) == [5, 2, 2])
            #expect(results.map(\.1) == [Array("first".utf8), Array("ab".utf8), Array("cd".utf8)])
            close(local)
            close(peer)
            await group.shutdown()
        }

        /// Many small echoes ended by a half-close, over IPv4 and IPv6: the race the first
        /// attempt lost (whether the FIN arrives before the server's last read) goes both
        /// ways here. Every read is bounded, so a lost end fails instead of hanging.
        @Test(arguments: [SocketAddress.ipv4(.loopback, port: 0), .ipv6(.loopback, port: 0)])
        func smallEchoesEndedByHalfCloseAllEnd(address: SocketAddress) async throws {
            try await withEchoServer(on: address) { address in
                for round in 0..<200 {
                    let payload = randomBytes(1 + round * 37 % 3000)
                    let connection = try await Connection.connect(to: address)
                    do {
                        try await connection.write(payload)
                        try await connection.shutdown(.write)
                        var echoed: [UInt8] = []
                        while let chunk = try await connection.read(timeout: .seconds(5)) { echoed.append(contentsOf: chunk) }
                        expectSameBytes(echoed, payload)
                        await connection.close()
                    } catch {
                        await connection.close()
                        throw error
                    }
                }
            }
        }
    }
}

/// Sends `bytes` on Unix socket `fd` with `descriptor` attached (`SCM_RIGHTS`).
private func sendWithDescriptor(_ fd: CInt, _ bytes: String, descriptor: CInt) -> Int {
    var bytes = Array(bytes.utf8)
    let header = MemoryLayout<cmsghdr>.size
    let space = header + MemoryLayout<Int>.size   // CMSG_SPACE(sizeof(int)) on 64-bit Linux
    let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
    defer { control.deallocate() }
    control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
    var cmsg = cmsghdr()
    cmsg.cmsg_len = header + MemoryLayout<CInt>.size
    cmsg.cmsg_level = SOL_SOCKET
    cmsg.cmsg_type = Int32(SCM_RIGHTS)
    control.storeBytes(of: cmsg, as: cmsghdr.self)
    control.storeBytes(of: descriptor, toByteOffset: header, as: CInt.self)
    return bytes.withUnsafeMutableBytes { raw in
        var vector = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
        return withUnsafeMutablePointer(to: &vector) { vector in
            var message = msghdr()
            message.msg_iov = vector
            message.msg_iovlen = 1
            message.msg_control = control
            message.msg_controllen = space
            return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        }
    }
}
