// udp-client: sends each line of standard input as one datagram to a UDP echo server and
// prints each reply as a line.
//
//   echo hello | swift run udp-client [--host 127.0.0.1] [--port 7001]
//   swift run -c release udp-client --count 100000 --size 64    # quick load check
//
// A datagram can be lost; a line whose reply does not come within a second is sent again,
// up to three times. With --count N --size S it sends N datagrams of S bytes instead (32 in
// flight), checks every reply's content and prints the rate.
import Torus

#if canImport(Glibc)
import Glibc
#endif

/// Reads standard input line by line on a thread of its own (a blocking read must not run on
/// an event loop or the cooperative pool).
func standardInputLines() -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream.makeStream(of: String.self)
    let box = Unmanaged.passRetained(LineReader(continuation)).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, lineReaderMain, box)
    pthread_detach(thread)
    return stream
}

final class LineReader: Sendable {
    let continuation: AsyncStream<String>.Continuation
    init(_ continuation: AsyncStream<String>.Continuation) { self.continuation = continuation }

    func run() {
        while let line = readLine(strippingNewline: true) { continuation.yield(line) }
        continuation.finish()
    }
}

func lineReaderMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<LineReader>.fromOpaque(argument!).takeRetainedValue().run()
    return nil
}

/// Sends each line and prints its reply, retrying lost ones.
func echoLines(_ socket: DatagramSocket) async throws {
    for await line in standardInputLines() {
        var reply: Datagram?
        for _ in 0..<3 where reply == nil {
            try await socket.send(line)
            do {
                reply = try await socket.read(timeout: .seconds(1))
            } catch let error as TorusError where error.kind == .timedOut {
                continue
            }
        }
        guard let reply else { throw TorusError(.timedOut, operation: .receive, detail: "no reply to \"\(line)\" after 3 tries") }
        print(String(decoding: reply.bytes, as: UTF8.self))
        fflush(nil)
    }
}

/// The payload of datagram `sequence`: its number, then bytes that derive from it.
func payload(_ sequence: Int, size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: max(size, 8))
    withUnsafeBytes(of: UInt64(sequence).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
    for index in 8..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: sequence &* 31 &+ index) }
    return bytes
}

/// Sends `count` datagrams of `size` bytes with up to 32 in flight and checks every reply.
func loadCheck(_ socket: DatagramSocket, count: Int, size: Int) async throws {
    let window = 32
    let start = ContinuousClock.now
    let bad = try await socket.withIsolation { socket in
        var sent = 0
        var received = 0
        var bad = 0
        while received < count {
            while sent < count, sent - received < window {
                try await socket.send(payload(sent, size: size))
                sent += 1
            }
            let reply = try await socket.read(timeout: .seconds(5))
            let sequence = reply.bytes.count >= 8 ? Int(reply.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) : -1
            if sequence < 0 || sequence >= count || reply.bytes != payload(sequence, size: size) { bad += 1 }
            received += 1
        }
        return bad
    }
    let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds)
    print("udp-client: \(count) datagrams of \(max(size, 8)) bytes echoed in \(seconds) s: \(Int(Double(count) / seconds)) datagrams/s, \(bad) bad")
    if bad > 0 { throw TorusError(.system, operation: .receive, detail: "\(bad) replies had the wrong content") }
}

func main() async -> Int32 {
    var host = "127.0.0.1"
    var port: UInt16 = 7001
    var count: Int?
    var size = 64
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        switch (flag, arguments.next()) {
        case ("--host", let value?): host = value
        case ("--port", let value?) where UInt16(value) != nil: port = UInt16(value)!
        case ("--count", let value?) where (Int(value) ?? 0) > 0: count = Int(value)!
        case ("--size", let value?) where (8...65507).contains(Int(value) ?? 0): size = Int(value)!
        default:
            print("usage: udp-client [--host HOST] [--port PORT] [--count N --size BYTES]")
            return 2
        }
    }
    do {
        guard let address = try await SocketAddress.resolve(host: host, port: port).first else {
            throw TorusError(.hostNotFound, operation: .resolve, detail: host)
        }
        let socket = try await DatagramSocket.connect(to: address)
        do {
            if let count {
                try await loadCheck(socket, count: count, size: size)
            } else {
                try await echoLines(socket)
            }
        } catch {
            await socket.close()
            throw error
        }
        await socket.close()
        return 0
    } catch {
        print("udp-client: \(error)")
        return 1
    }
}

exit(await main())
