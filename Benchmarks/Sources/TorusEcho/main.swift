// torus-echo: the Torus echo server of the benchmarks.
//
//   torus-echo --mode on-loop|task-group|isolated|receive|send [--port 7000] [--host 127.0.0.1]
//
// One event loop thread (`EventLoopGroup(loopCount: 1, configuration: arguments.configuration)`), the listener on that loop.
//
// - `on-loop`: the accept loop and every connection handler run on the connection's event loop
//   (`group.addTask(executorPreference: connection.eventLoop)`); echo with
//   `read(maxBytes: 65536)` then `write`.
// - `task-group`: the plain form, `group.addTask { ... }` with no executor preference: handlers
//   run on Swift's global concurrent executor and every read and write hops to the loop and
//   back; echo with `read(maxBytes: 65536)` then `write`.
// - `isolated`: the handler runs isolated to its connection
//   (`connection.withIsolation { connection in ... }`): every call is a direct call on the loop;
//   echo with `read(maxBytes: 65536)` then `write`.
// - `receive`: as `isolated`, echoing with the zero-copy `receive()` and writing straight from
//   the receive buffer (`bytes.withUnsafeBytes { try await connection.write($0) }`).
// - `send`: as `receive`, but queueing each received buffer with `connection.send(bytes)`:
//   no copy, no wait for the kernel, queued buffers gathered into one `sendmsg`.
//
// Prints "listening on PORT" once ready. SIGINT/SIGTERM end it.
import Torus

#if canImport(Glibc)
import Glibc
#endif

enum Mode: String {
    case onLoop = "on-loop"
    case taskGroup = "task-group"
    case isolated
    case receive
    case send
}

struct Arguments {
    var mode = Mode.onLoop
    var host = "127.0.0.1"
    var port: UInt16 = 7000
    /// The loop's tuning; `--buffers` and `--buffer-size` change its receive buffers.
    var configuration = EventLoop.Configuration()

    static let usage = "usage: torus-echo --mode on-loop|task-group|isolated|receive|send [--port PORT] [--host ADDRESS] [--buffers N] [--buffer-size BYTES]"

    init(_ arguments: [String]) throws(UsageError) {
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            guard let value = remaining.next() else { throw UsageError("\(flag) needs a value\n\(Self.usage)") }
            switch flag {
            case "--mode":
                guard let mode = Mode(rawValue: value) else { throw UsageError("unknown mode \(value)\n\(Self.usage)") }
                self.mode = mode
            case "--host": host = value
            case "--port":
                guard let port = UInt16(value) else { throw UsageError("--port must be 0...65535, not \(value)") }
                self.port = port
            case "--buffers":
                guard let count = Int(value), count > 0, count & (count - 1) == 0, count <= 32768 else {
                    throw UsageError("--buffers must be a power of two up to 32768, not \(value)")
                }
                configuration.receiveBufferCount = count
            case "--buffer-size":
                guard let size = Int(value), size >= 512 else { throw UsageError("--buffer-size must be at least 512, not \(value)") }
                configuration.receiveBufferSize = size
            default: throw UsageError("unknown option \(flag)\n\(Self.usage)")
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Echoes one connection until the peer finishes sending or the connection fails.
func echo(_ connection: Connection) async {
    do {
        while let bytes = try await connection.read(maxBytes: 65536) {
            try await connection.write(bytes)
        }
    } catch {
        // A reset ends this connection only.
    }
    await connection.close()
}

/// `echo` for a handler isolated to its connection.
func echoIsolated(_ connection: isolated Connection) async {
    do {
        while let bytes = try await connection.read(maxBytes: 65536) {
            try await connection.write(bytes)
        }
    } catch {
        // A reset ends this connection only.
    }
    await connection.close()
}

/// Echoes with the zero-copy `receive()`: the bytes go back out of the receive buffer the
/// kernel filled.
func echoReceive(_ connection: isolated Connection) async {
    do {
        while let bytes = try await connection.receive() {
            try await bytes.withUnsafeBytes { try await connection.write($0) }
        }
    } catch {
        // A reset ends this connection only.
    }
    await connection.close()
}

/// Echoes with queued sends: each received buffer is handed to `send(_:)`, which returns
/// without waiting for the kernel; closing lets the queue drain.
func echoSend(_ connection: isolated Connection) async {
    do {
        while let bytes = try await connection.receive() {
            try await connection.send(bytes)
        }
    } catch {
        // A reset ends this connection only.
    }
    await connection.close()
}

func serveOnLoop(_ listener: Listener) async throws {
    try await withThrowingDiscardingTaskGroup { group in
        for try await connection in listener {
            group.addTask(executorPreference: connection.eventLoop) {
                await echo(connection)
            }
        }
    }
}

func serveInTaskGroup(_ listener: Listener) async throws {
    try await withThrowingDiscardingTaskGroup { group in
        for try await connection in listener {
            group.addTask {
                await echo(connection)
            }
        }
    }
}

func serveIsolated(_ listener: Listener, mode: Mode) async throws {
    try await withThrowingDiscardingTaskGroup { group in
        for try await connection in listener {
            group.addTask {
                switch mode {
                case .receive: await connection.withIsolation { await echoReceive($0) }
                case .send: await connection.withIsolation { await echoSend($0) }
                default: await connection.withIsolation { await echoIsolated($0) }
                }
            }
        }
    }
}

/// The idle-connection benchmark holds 10,000 connections: allow as many descriptors as the
/// hard limit does.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

func main() async -> Int32 {
    let arguments: Arguments
    do {
        arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    } catch {
        print(error)
        return 2
    }
    raiseDescriptorLimit()
    do {
        let group = try EventLoopGroup(loopCount: 1, configuration: arguments.configuration)
        let loop = group.loops[0]
        let listener = try await Listener(
            bindingTo: SocketAddress(host: arguments.host, port: arguments.port),
            backlog: 4096,
            on: loop
        )
        print("listening on \(listener.localAddress.port ?? arguments.port)")
        fflush(nil)  // stdout is block-buffered into a pipe: the run script waits for this line
        switch arguments.mode {
        case .onLoop:
            try await withTaskExecutorPreference(loop) { try await serveOnLoop(listener) }
        case .taskGroup:
            try await serveInTaskGroup(listener)
        case .isolated, .receive, .send:
            try await serveIsolated(listener, mode: arguments.mode)
        }
        return 0
    } catch {
        print("torus-echo: \(error)")
        return 1
    }
}

exit(await main())
