// echo-server: sends back every byte it receives.
//
//   swift run echo-server [--host 127.0.0.1] [--port 7000] [--threads 1] [--listener per-loop|shared]
//
// With --threads N it runs N event loops. `--listener per-loop` (the default) gives each loop
// its own listener on the same port (SO_REUSEPORT), so the kernel spreads connections over the
// loops; `--listener shared` opens one listener that places connections on the loops in turn.
// A `Server` serves each connection in a child task, isolated to the connection on its loop,
// so reads and writes cost no thread hop.
import Logging
import Torus

#if canImport(Glibc)
import Glibc
#endif

struct Arguments {
    var host = "127.0.0.1"
    var port: UInt16 = 7000
    var threads = 1
    var sharedListener = false

    static let usage = "usage: echo-server [--host ADDRESS] [--port PORT] [--threads N] [--listener per-loop|shared]"

    init(_ arguments: [String]) throws(UsageError) {
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            guard let value = remaining.next(), flag.hasPrefix("--") else {
                throw UsageError(flag == "--help" || flag == "-h" ? Self.usage : "\(flag) needs a value\n\(Self.usage)")
            }
            switch flag {
            case "--host": host = value
            case "--port":
                guard let port = UInt16(value) else { throw UsageError("--port must be 0...65535, not \(value)") }
                self.port = port
            case "--threads":
                guard let threads = Int(value), threads > 0 else { throw UsageError("--threads must be a positive number, not \(value)") }
                self.threads = threads
            case "--listener":
                guard value == "per-loop" || value == "shared" else { throw UsageError("--listener must be per-loop or shared, not \(value)") }
                sharedListener = value == "shared"
            default: throw UsageError("unknown option \(flag)\n\(Self.usage)")
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Echoes one connection until the peer finishes sending, then closes it (which lets what is
/// queued go out first). Runs isolated to the connection, on its event loop: each receive and
/// send is a direct call, and the bytes go back out of the receive buffer the kernel filled,
/// without a copy and without waiting for each send.
/// Sends back every byte received, with no copy, until the peer ends the stream. The server
/// closes the connection afterwards, and a reset ends this connection only.
func echo(_ connection: isolated Connection) async throws {
    while let bytes = try await connection.receive() {
        try await connection.send(bytes)
    }
}

/// Only notices and worse: the server's own lines are enough for a demo.
let quiet = { var logger = Logger(label: "echo-server"); logger.logLevel = .notice; return logger }()

func main() async -> Int32 {
    let arguments: Arguments
    do {
        arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    } catch {
        print(error)
        return 2
    }
    do {
        let group = try EventLoopGroup(loopCount: arguments.threads)
        let address = try SocketAddress(host: arguments.host, port: arguments.port)
        var listeners: [Listener] = []
        if arguments.sharedListener {
            listeners.append(try await Listener(bindingTo: address, group: group))
        } else if arguments.threads > 1 {
            listeners = try await Listener.perLoop(bindingTo: address, group: group)
        } else {
            listeners.append(try await Listener(bindingTo: address, on: group.loops[0]))
        }
        print("echo-server listening on \(listeners[0].localAddress) with \(arguments.threads) event loop(s) on \(group.engine)")
        fflush(nil)  // Into a pipe, stdout is block-buffered: scripts wait for this line.
        try await Server(listeners: listeners, logger: quiet).run(echo)
        return 0
    } catch {
        print("echo-server: \(error)")
        return 1
    }
}

exit(await main())
