// echo-client: connects to an echo server, sends what it reads from standard input, and
// prints what comes back. At the end of input it shuts down its write side and prints the
// rest of the echo until the server closes.
//
//   echo "hello" | swift run echo-client [--host 127.0.0.1] [--port 7000] [--tls [--ca FILE] [--server-name NAME]]
//
// With --tls it speaks TLS (TorusTLS), verifying the server against the CA in --ca (the
// system's trust store without it) and its certificate against --server-name (by default
// --host).
import Torus
import TorusTLS

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

/// Sends standard input through `stream` and prints what comes back, until the server ends
/// the stream.
func pipe(_ stream: some ByteStream) async throws {
    try await withThrowingTaskGroup { group in
        group.addTask {
            for await chunk in standardInput() {
                try await stream.write(chunk)
            }
            try await stream.shutdown(.write)
        }
        group.addTask {
            while let bytes = try await stream.receive() {
                _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            }
        }
        try await group.waitForAll()
    }
    await stream.close()
}

func main() async -> Int32 {
    let usage = "usage: echo-client [--host HOST] [--port PORT] [--tls [--ca FILE] [--server-name NAME]]"
    var host = "127.0.0.1"
    var port: UInt16 = 7000
    var tls = false
    var caFile: String?
    var serverName: String?
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        if flag == "--tls" {
            tls = true
            continue
        }
        switch (flag, arguments.next()) {
        case ("--host", let value?): host = value
        case ("--port", let value?) where UInt16(value) != nil: port = UInt16(value)!
        case ("--ca", let value?): caFile = value
        case ("--server-name", let value?): serverName = value
        default:
            print(usage)
            return 2
        }
    }
    guard tls || (caFile == nil && serverName == nil) else {
        print("echo-client: --ca and --server-name need --tls\n\(usage)")
        return 2
    }
    do {
        if tls {
            let context = try TLSContext(.client(trustRoots: caFile.map { .certificates(.file($0)) } ?? .system))
            try await pipe(try await TLSStream.connect(host: host, port: port, context: context, serverName: serverName))
        } else {
            try await pipe(try await Connection.connect(host: host, port: port, timeout: .seconds(5)))
        }
        return 0
    } catch {
        print("echo-client: \(error)")
        return 1
    }
}

exit(await main())
