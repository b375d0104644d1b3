import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// A write that stops part-way leaves a gap in the stream: nothing may follow it. And the
    /// small edges of reading and addresses that used to trap or lie.
    @Suite(.noDescriptorLeaks)
    struct WriteIntegrityTests {
        @Test func writeThatTimesOutPartWayRefusesEveryLaterWriteAndSend() async throws {
            // The peer does not read during the write: the kernel's buffers take a few MiB,
            // then the write waits for room until its timeout.
            let (connection, peer) = try await connectToRawPeer()
            defer { peer.close() }
            let size = 8 << 20
            let error = await expectTorusError(.timedOut) {
                try await connection.write([UInt8](repeating: 0x61, count: size), timeout: .milliseconds(200))
            }
            let written = await connection.bytesSent
            #expect(written > 0 && written < UInt64(size))
            // The error names the timeout asked for and how far the write got.
            #expect(error?.detail?.contains("0.2 seconds") == true, "\(String(describing: error))")
            #expect(error?.detail?.contains("\(written) of \(size) bytes") == true, "\(String(describing: error))")

            // Nothing more goes out: not a write, not a queued send, not a vectored write.
            let later = await expectTorusError(.timedOut) { try await connection.write("END\n") }
            #expect(later?.detail == error?.detail)
            await expectTorusError(.timedOut) { try await connection.write(contentsOf: [[1], [2]]) }
            await expectTorusError(.timedOut) { try await connection.send(Array("END\n".utf8)) }
            #expect(await connection.bytesSent == written)

            // The peer gets exactly the bytes written, all of them the first write's.
            await connection.close()
            let received = try await onPOSIXThread { () -> Result<[UInt8], any Error> in
                Result {
                    var all: [UInt8] = []
                    while true {
                        let chunk = try peer.receive()
                        if chunk.isEmpty { return all }
                        all += chunk
                    }
                }
            }.get()
            #expect(UInt64(received.count) == written)
            #expect(received.allSatisfy { $0 == 0x61 })
        }

        @Test func readOfZeroBytesReturnsEmptyAndANegativeCountIsAnError() async throws {
            let (client, server) = try await connectedPair()
            #expect(try await client.read(maxBytes: 0) == [])
            let error = await expectTorusError(.invalidArgument) { try await client.read(maxBytes: -1) }
            #expect(error?.operation == .read)
            // Neither consumed anything.
            try await server.write("x")
            #expect(try await client.read() == [0x78])
            await client.close()
            await expectTorusError(.connectionClosed) { try await client.read(maxBytes: 0) }
            await server.close()
        }

        @Test func connectedDatagramSocketReportsTheAddressItSendsFrom() async throws {
            let peer = try await DatagramSocket(bindingTo: .ipv4(.loopback, port: 0))
            let socket = try await DatagramSocket.connect(to: peer.localAddress)
            guard case .ipv4(let host, let port) = socket.localAddress else {
                Issue.record("not IPv4: \(socket.localAddress)")
                return
            }
            #expect(host == .loopback)
            #expect(port != 0)
            try await socket.send(Array("who".utf8))
            let datagram = try await peer.receive(timeout: .seconds(5))
            #expect(datagram.sender == socket.localAddress)
            await socket.close()
            await peer.close()
        }
    }
}

extension TorusTests {
    /// Owned bytes queued with `send`: from any task, in order, bounded by the high-water mark.
    @Suite(.noDescriptorLeaks)
    struct OwnedSendTests {
        @Test func ownedSendsFromAnotherTaskArriveInOrder() async throws {
            let (client, server) = try await connectedPair()
            // Not isolated to the connection: arrays, strings and slices are Sendable.
            try await client.send([1, 2, 3])
            try await client.send("four")
            try await client.send([9, 5, 6, 9][1...2])
            try await client.send([UInt8]())
            try await client.flush()
            try await client.shutdown(.write)
            #expect(try await server.readToEnd() == [1, 2, 3] + Array("four".utf8) + [5, 6])
            await client.close()
            await server.close()
        }

        @Test func manySmallOwnedSendsQueueUpToTheHighWaterMarkWithoutWaiting() async throws {
            // A chat room broadcasting short lines to a peer that has stopped reading: the
            // queue is bounded by its high-water mark in bytes, so it must not make the 17th
            // line wait (it once did: 16 buffers was also the cap for owned bytes, and a
            // broadcaster that trusted isWritable hung on a stalled peer).
            let options = ConnectionOptions(sendBufferSize: 4096, sendQueueHighWaterMark: 1 << 20)
            let (connection, peer) = try await connectToRawPeer(options: options, peerReceiveBufferSize: 4096)
            defer { peer.close() }
            let first = 1 << 20 / 2  // more than the kernel's buffers take: its sendmsg waits
            let lines = 200
            let sender = Task {
                try await connection.send([UInt8](repeating: 1, count: first))
                for _ in 0..<lines { try await connection.send([UInt8](repeating: 2, count: 100)) }
            }
            let queuedInTime = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await sender.value; return true }
                group.addTask { try await Task.sleep(for: .seconds(5)); return false }
                let queued = try await group.next()!
                // Whichever finished first, the peer now reads everything, so the sender ends.
                let received = await onPOSIXThread { () -> Int in
                    var total = 0
                    while total < first + lines * 100, let chunk = try? peer.receive(), !chunk.isEmpty { total += chunk.count }
                    return total
                }
                #expect(received == first + lines * 100)
                group.cancelAll()
                return queued
            }
            #expect(queuedInTime, "a small owned send waited with the queue far below its high-water mark")
            try await connection.flush()
            #expect(await connection.queuedBytes == 0)
            await connection.close()
        }

        @Test func sendsPastTheHighWaterMarkWaitAndIsWritableSaysSo() async throws {
            let options = ConnectionOptions(sendBufferSize: 4096, sendQueueHighWaterMark: 64 * 1024)
            let (connection, peer) = try await connectToRawPeer(options: options, peerReceiveBufferSize: 4096)
            defer { peer.close() }
            #expect(await connection.isWritable)
            // The peer does not read: the kernel takes some, the queue the rest, until a send
            // finds the queue past its mark and waits.
            let sender = Task {
                for _ in 0..<64 { try await connection.send([UInt8](repeating: 7, count: 16 * 1024)) }
            }
            var waited = false
            for _ in 0..<1000 {
                if await !connection.isWritable { waited = true; break }
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(waited)
            #expect(await connection.queuedBytes >= 64 * 1024)
            // The queue stays bounded: sends are waiting, not piling up.
            #expect(await connection.queuedBytes < 64 * 1024 + 16 * 1024 * 16)
            // Once the peer reads, everything goes through.
            let received = await onPOSIXThread { () -> Int in
                var total = 0
                while total < 64 * 16 * 1024, let chunk = try? peer.receive(), !chunk.isEmpty { total += chunk.count }
                return total
            }
            try await sender.value
            try await connection.flush()
            #expect(received == 64 * 16 * 1024)
            #expect(await connection.queuedBytes == 0)
            #expect(await connection.isWritable)
            await connection.close()
        }
    }
}
