// nio-echo: the SwiftNIO echo servers of the benchmarks.
//
//   nio-echo --mode handler|async [--port 7000] [--host 127.0.0.1]
//
// One event loop thread (`MultiThreadedEventLoopGroup(numberOfThreads: 1)`), TCP_NODELAY on
// accepted connections.
//
// - `handler`: the classic `ChannelInboundHandler` echo (write in channelRead, flush in
//   channelReadComplete) installed with `ServerBootstrap`.
// - `async`: `NIOAsyncChannel` from `bind(...) { NIOAsyncChannel(wrappingChannelSynchronously:) }`,
//   one child task per connection in a discarding task group, no executor preference:
//   `for try await buffer in inbound { try await outbound.write(buffer) }`.
//
// Prints "listening on PORT" once ready. SIGINT/SIGTERM end it.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

enum Mode: String {
    case handler
    case async
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Arguments {
    var mode = Mode.handler
    var host = "127.0.0.1"
    var port = 7000

    static let usage = "usage: nio-echo --mode handler|async [--port PORT] [--host ADDRESS]"

    init(_ arguments: [String]) throws {
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            guard let value = remaining.next() else { throw UsageError("\(flag) needs a value\n\(Self.usage)") }
            switch flag {
            case "--mode":
                guard let mode = Mode(rawValue: value) else { throw UsageError("unknown mode \(value)\n\(Self.usage)") }
                self.mode = mode
            case "--host": host = value
            case "--port":
                guard let port = Int(value), (0...65535).contains(port) else {
                    throw UsageError("--port must be 0...65535, not \(value)")
                }
                self.port = port
            default: throw UsageError("unknown option \(flag)\n\(Self.usage)")
            }
        }
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

func bootstrap(_ group: MultiThreadedEventLoopGroup) -> ServerBootstrap {
    ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
}

func announce(_ address: SocketAddress?, fallback: Int) {
    print("listening on \(address?.port ?? fallback)")
    fflush(nil)  // stdout is block-buffered into a pipe: the run script waits for this line
}

func runHandler(_ arguments: Arguments, group: MultiThreadedEventLoopGroup) async throws {
    let channel = try await bootstrap(group)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(EchoHandler())
            }
        }
        .bind(host: arguments.host, port: arguments.port)
        .get()
    announce(channel.localAddress, fallback: arguments.port)
    try await channel.closeFuture.get()
}

func runAsync(_ arguments: Arguments, group: MultiThreadedEventLoopGroup) async throws {
    let server = try await bootstrap(group)
        .bind(host: arguments.host, port: arguments.port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    announce(server.channel.localAddress, fallback: arguments.port)
    try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { connections in
            for try await connection in connections {
                group.addTask {
                    do {
                        try await connection.executeThenClose { inbound, outbound in
                            for try await buffer in inbound {
                                try await outbound.write(buffer)
                            }
                        }
                    } catch {
                        // A reset ends this connection only.
                    }
                }
            }
        }
    }
}

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
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        switch arguments.mode {
        case .handler: try await runHandler(arguments, group: group)
        case .async: try await runAsync(arguments, group: group)
        }
        return 0
    } catch {
        print("nio-echo: \(error)")
        return 1
    }
}

exit(await main())
