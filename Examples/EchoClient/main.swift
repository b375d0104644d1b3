// echo-client: connects to an echo server, sends what it reads from standard input, and
// prints what comes back. At the end of input it shuts down its write side and prints the
// rest of the echo until the server closes.
//
//   echo "hello" | swift run echo-client [--host 127.0.0.1] [--port 7000]
import Torus

#if canImport(Glibc)
import Glibc
#endif

/// Reads standard input on a thread of its own (a blocking read must not run on an event
/// loop or the cooperative pool) and yields it in chunks.
func standardInput() -> AsyncStream<[UInt8]> {
    let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
    let box = Unmanaged.passRetained(StdinReader(continuation)).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, stdinThreadMain, box)
    pthread_detach(thread)
    return stream
}

final class StdinReader: Sendable {
    let continuation: AsyncStream<[UInt8]>.Continuation
    init(_ continuation: AsyncStream<[UInt8]>.Continuation) { self.continuation = continuation }

    func run() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            continuation.yield(Array(buffer[..<count]))
        }
        continuation.finish()
    }
}

func stdinThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<StdinReader>.fromOpaque(argument!).takeRetainedValue().run()
    return nil
}

func main() async -> Int32 {
    var host = "127.0.0.1"
    var port: UInt16 = 7000
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        switch (flag, arguments.next()) {
        case ("--host", let value?): host = value
        case ("--port", let value?) where UInt16(value) != nil: port = UInt16(value)!
        default:
            print("usage: echo-client [--host HOST] [--port PORT]")
            return 2
        }
    }
    do {
        let connection = try await Connection.connect(host: host, port: port, timeout: .seconds(5))
        try await withThrowingTaskGroup { group in
            group.addTask {
                for await chunk in standardInput() {
                    try await connection.write(chunk)
                }
                try await connection.shutdown(.write)
            }
            group.addTask {
                while let bytes = try await connection.read() {
                    _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                }
            }
            try await group.waitForAll()
        }
        await connection.close()
        return 0
    } catch {
        print("echo-client: \(error)")
        return 1
    }
}

exit(await main())
