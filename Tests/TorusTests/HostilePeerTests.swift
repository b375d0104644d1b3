import Synchronization
import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// Peers that attack a server by being slow: trickling a request forever (slowloris), or
    /// sending while never reading what comes back.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(1)))
    struct HostilePeerTests {
        /// The start of a request head that never ends: each trickled byte is one more header
        /// byte.
        static let headStart = Array("GET / HTTP/1.1\r\nHost: torus\r\nX-Trickle: ".utf8)

        /// Sends `bytes`, then one byte every `interval` until `stop` opens or a write fails
        /// (the server cut the connection). Returns how many bytes it trickled.
        static func trickle(
            on connection: Connection, after bytes: [UInt8], every interval: Duration, until stop: Gate
        ) async -> Int {
            var trickled = 0
            do {
                try await connection.write(bytes)
                while !stop.isOpen {
                    try await connection.eventLoop.sleep(for: interval)
                    try await connection.write([UInt8(ascii: "a")])
                    trickled += 1
                }
            } catch {}
            return trickled
        }

        // MARK: Slowloris

        /// A trickle that always delivers a byte before the read timeout, and so is never idle
        /// either, gets through `readTimeout` and `idleTimeout`: both are per-read or
        /// per-silence, and the trickler is never silent long enough. What cuts it is a
        /// deadline on the whole request, which a handler builds from per-call timeouts (each
        /// read gets what is left of the deadline). The Server has no such deadline of its
        /// own: a protocol's handler must set it.
        @Test func aTrickleUnderTheReadTimeoutIsCutByARequestDeadlineAndNotByReadOrIdleTimeouts() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let configuration = Server.Configuration(idleTimeout: .milliseconds(300), readTimeout: .milliseconds(200))
            let server = Server(listener: listener, configuration: configuration)
            let requestDeadline: Duration = .milliseconds(600)
            let (outcomes, outcome) = AsyncStream.makeStream(of: (deadline: Bool, result: String, after: Duration).self)
            let running = Task {
                try await server.run { connection in
                    let start = ContinuousClock.now
                    var head: [UInt8] = []
                    var withDeadline: Bool?
                    do {
                        while !head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                            // A peer that opens with "D" gets a deadline for its whole head.
                            var timeout: Duration?
                            if withDeadline == true {
                                timeout = requestDeadline - (ContinuousClock.now - start)
                                if timeout! <= .zero { throw TorusError(.timedOut, operation: .read) }
                            }
                            guard let bytes = try await connection.read(timeout: timeout) else { return }
                            if withDeadline == nil { withDeadline = bytes.first == UInt8(ascii: "D") }
                            head += bytes
                        }
                        try await connection.write("ok")
                        outcome.yield((withDeadline == true, "served", ContinuousClock.now - start))
                    } catch let error as TorusError {
                        outcome.yield((withDeadline == true, "\(error.kind)", ContinuousClock.now - start))
                    }
                }
            }
            var results = outcomes.makeAsyncIterator()

            let stop = Gate()
            let bounded = try await Connection.connect(to: listener.localAddress)
            let unbounded = try await Connection.connect(to: listener.localAddress)
            async let boundedTrickled = Self.trickle(on: bounded, after: Array("D".utf8) + Self.headStart, every: .milliseconds(50), until: stop)
            async let unboundedTrickled = Self.trickle(on: unbounded, after: Self.headStart, every: .milliseconds(50), until: stop)

            // The deadline cuts the first one, though it never stopped sending.
            let first = try #require(await results.next())
            #expect(first.deadline && first.result == "timed out", "\(first)")
            #expect(first.after >= requestDeadline && first.after < requestDeadline * 4, "\(first)")
            #expect(try await bounded.read() == nil, "the server closed it")

            // Nothing happens to the other one, and nothing can be awaited for that: it keeps
            // trickling for twice the deadline (6 read timeouts, 4 idle timeouts) and is still
            // served when it finally ends its head.
            try await unbounded.eventLoop.sleep(for: requestDeadline * 2)
            stop.open()
            let trickled = await unboundedTrickled
            #expect(trickled >= 10, "it trickled \(trickled) bytes")
            _ = await boundedTrickled
            try await unbounded.write("\r\n\r\n")
            #expect(try await unbounded.read(exactly: 2) == Array("ok".utf8), "the trickler was served")
            let second = try #require(await results.next())
            #expect(!second.deadline && second.result == "served", "\(second)")
            #expect(second.after > configuration.readTimeout! * 5 && second.after > configuration.idleTimeout! * 3, "\(second)")

            await bounded.close()
            await unbounded.close()
            server.shutdown()
            try await running.value
        }

        /// A trickle slower than the read timeout is cut at its first gap.
        @Test func aTrickleSlowerThanTheReadTimeoutIsCutAtItsFirstGap() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let readTimeout: Duration = .milliseconds(150)
            let server = Server(listener: listener, configuration: .init(readTimeout: readTimeout))
            let (outcomes, outcome) = AsyncStream.makeStream(of: (result: String, bytes: Int).self)
            let running = Task {
                try await server.run { connection in
                    var count = 0
                    do {
                        while let bytes = try await connection.read() { count += bytes.count }
                        outcome.yield(("end of stream", count))
                    } catch let error as TorusError {
                        outcome.yield(("\(error.operation): \(error.kind)", count))
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress)
            let stop = Gate()
            async let trickled = Self.trickle(on: client, after: Self.headStart, every: readTimeout * 2, until: stop)
            var results = outcomes.makeAsyncIterator()
            let result = try #require(await results.next())
            #expect(result.result == "read: timed out")
            #expect(result.bytes == Self.headStart.count, "cut before the first trickled byte arrived")
            // The server closed it: the trickler's next writes fail.
            #expect(await trickled <= 1)
            await client.close()
            server.shutdown()
            try await running.value
        }

        /// The http-hello example against slow peers, with `--idle-timeout 0.3`: a request head
        /// that stops coming is cut after the idle timeout; a head over 16 KiB gets 431 and a
        /// close, so a trickle cannot grow its buffer without bound; and a head trickled a byte
        /// at a time, each before the idle timeout, is cut too: a request head must be complete
        /// within the idle timeout of its first byte (a per-receive timeout alone would let a
        /// slowloris hold the connection for 16 KiB at one byte per timeout).
        @Test func httpHelloCutsASilentOversizedOrTrickledHead() async throws {
            let child = try ChildProcess(try builtProgram("http-hello"), ["--port", "0", "--idle-timeout", "0.3"])
            var exited = false
            defer { if !exited { kill(child.pid, SIGKILL) } }
            let output = OutputWatcher(child)
            try #require(await output.wait(for: "event loop(s)"), "no listening line: \(output.text)")
            let prefix = "http-hello listening on 127.0.0.1:"
            let line = try #require(output.text.split(separator: "\n").first { $0.hasPrefix(prefix) }, "\(output.text)")
            let port = try #require(UInt16(line.dropFirst(prefix.count).prefix { $0.isNumber }), "\(line)")
            let address = SocketAddress.ipv4(.loopback, port: port)
            let idleTimeout: Duration = .milliseconds(300)

            // A head that stops: closed after the idle timeout, with no answer. The server's
            // clock for it starts when the connection is accepted, so this one starts before
            // the connect.
            let start = ContinuousClock.now
            let silent = try await Connection.connect(to: address)
            let trickler = try await Connection.connect(to: address)
            let stop = Gate()
            async let trickled = Self.trickle(on: trickler, after: Self.headStart, every: idleTimeout / 3, until: stop)
            try await silent.write(Self.headStart)
            #expect(try await silent.read() == nil, "closed without an answer")
            #expect(ContinuousClock.now - start >= idleTimeout)
            await silent.close()

            // A head over 16 KiB: 431, then the close.
            let oversized = try await Connection.connect(to: address)
            try await oversized.write(Self.headStart + [UInt8](repeating: UInt8(ascii: "a"), count: 17 * 1024))
            let answer = try await oversized.readToEnd()
            #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 431 "), "\(String(decoding: answer, as: UTF8.self))")
            await oversized.close()

            // The trickle: nothing can be awaited for a cut that does not come; it trickles
            // for five idle timeouts.
            let cut = Gate()
            let headEnded = Gate()
            let watching = Task {
                // The end of the stream, a reset, or an answer before the head ended: the server
                // gave up on the head.
                let first = try? await trickler.read(maxBytes: 1)   // nil at end of stream or on an error
                if first == nil || !headEnded.isOpen { cut.open() }
            }
            try await trickler.eventLoop.sleep(for: idleTimeout * 5 - (ContinuousClock.now - start))
            stop.open()
            let count = await trickled
            #expect(cut.isOpen, "a head trickled for \(idleTimeout * 5) (\(count) bytes) is still open")
            watching.cancel()
            await trickler.close()

            kill(child.pid, SIGTERM)
            await output.finish()
            let termination = await onPOSIXThread { child.finish(timeout: .seconds(30)) }
            exited = true
            #expect(termination == .exited(0), "\(output.text)")
        }

        // MARK: A peer that never reads

        /// Echo by `send(_:)` to a peer that sends without end and never reads. The server's
        /// socket fills, its outbox fills (16 buffers), its handler stops receiving, and so the
        /// peer's own sends stop: what the server holds stays bounded, whatever the peer
        /// sends. Then the outbox's `sendmsg` times out (`writeTimeout`), and the handler's next
        /// send fails with `.timedOut`.
        @Test func queuedSendsToAPeerThatNeverReadsTimeOutWithBoundedMemory() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let writeTimeout: Duration = .milliseconds(300)
            let server = Server(listener: listener, configuration: .init(writeTimeout: writeTimeout))
            let (outcomes, outcome) = AsyncStream.makeStream(of: (result: String, received: UInt64, sent: UInt64).self)
            let running = Task {
                try await server.run { connection in
                    try connection.setSendBufferSize(16 * 1024)
                    do {
                        while let bytes = try await connection.receive() {
                            try await connection.send(bytes)
                        }
                        outcome.yield(("end of stream", connection.bytesReceived, connection.bytesSent))
                    } catch let error as TorusError {
                        outcome.yield(("\(error.operation): \(error.kind)", connection.bytesReceived, connection.bytesSent))
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 4096))
            let flood = [UInt8](repeating: 0x5A, count: 64 << 20)
            let writer = Task { try await client.write(flood) }

            var results = outcomes.makeAsyncIterator()
            let result = try #require(await results.next())
            #expect(result.result == "write: timed out")
            // In the handler's hands: 16 buffers queued to send and 16 received, 16 KiB each,
            // and what the kernel delivered before a pause took effect (copied out).
            let held = result.received - result.sent
            #expect(held <= 4 << 20, "the server held \(held) bytes")
            // And so the peer could not send more than the socket buffers and that.
            #expect(result.received < 16 << 20, "the server took \(result.received) of the peer's \(flood.count) bytes")
            await #expect(throws: TorusError.self, "the flood never got through") { try await writer.value }
            await client.close()
            server.shutdown()
            try await running.value
        }

        /// After a queued send timed out, the connection sends nothing more: bytes dropped with
        /// the failed send would leave a hole in the stream, so a peer that reads late must get
        /// a prefix of what was echoed to it, never bytes from after the hole.
        @Test func afterAQueuedSendTimesOutNothingMoreIsSent() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener, configuration: .init(writeTimeout: .milliseconds(300)))
            let (outcomes, outcome) = AsyncStream.makeStream(of: String.self)
            let running = Task {
                try await server.run { connection in
                    try connection.setSendBufferSize(16 * 1024)
                    do {
                        while let bytes = try await connection.receive() {
                            try await connection.send(bytes)
                        }
                        outcome.yield("end of stream")
                    } catch let error as TorusError {
                        outcome.yield("\(error.operation): \(error.kind)")
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 4096))
            let stream = randomBytes(16 << 20, seed: 7)
            let writer = Task { try await client.write(stream) }
            var results = outcomes.makeAsyncIterator()
            #expect(await results.next() == "write: timed out")

            // Read now, while the server closes the connection (which lets what is queued go
            // out first).
            var echoed: [UInt8] = []
            while let bytes = try? await client.read() { echoed += bytes }
            #expect(echoed.count > 0)
            expectSameBytes(echoed, Array(stream.prefix(echoed.count)), "the echoed stream (a prefix of the one sent)")
            _ = await writer.result
            await client.close()
            server.shutdown()
            try await running.value
        }

        /// Echo by `send(_:)` to a peer that sends without end and reads slowly (16 KiB every
        /// 20 ms). The server should hold about its share of receive buffers (16) and its outbox
        /// (16 buffers) for it, 512 KiB, plus what the kernel delivered in one pass before a pause
        /// took effect: a few MiB at most. It must not pile up more with every buffer the slow
        /// reader lets go.
        @Test func aSlowReaderCannotMakeTheServerHoldMoreThanABoundedAmount() async throws {
            let listener = try await Listener(bindingTo: .ipv4(.loopback, port: 0))
            let server = Server(listener: listener)
            let (accepted, accept) = AsyncStream.makeStream(of: Connection.self)
            let running = Task {
                try await server.run { connection in
                    accept.yield(connection)
                    try connection.setSendBufferSize(16 * 1024)
                    while let bytes = try await connection.receive() {
                        try await connection.send(bytes)
                    }
                }
            }
            let client = try await Connection.connect(to: listener.localAddress, options: .init(receiveBufferSize: 16 * 1024))
            var connections = accepted.makeAsyncIterator()
            let served = try #require(await connections.next())
            let flood = [UInt8](repeating: 0x5A, count: 256 << 20)
            let writer = Task { try await client.write(flood) }

            // Reading slowly is the point: a read every 20 ms, for a second and a half.
            var mostHeld: UInt64 = 0
            var read = 0
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .milliseconds(1500) {
                try await client.eventLoop.sleep(for: .milliseconds(20))
                read += try await client.read(maxBytes: 16 * 1024)?.count ?? 0
                let held = await served.bytesReceived - served.bytesSent
                mostHeld = max(mostHeld, held)
            }
            #expect(read > 0)
            #expect(mostHeld <= 4 << 20, "the server held up to \(mostHeld) bytes for one slow reader")

            writer.cancel()
            _ = await writer.result
            await client.close()
            server.shutdown()
            try await running.value
        }
    }
}
