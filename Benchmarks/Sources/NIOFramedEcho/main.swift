// nio-framed-echo: the framed SwiftNIO echo server of the benchmarks (`run --framed`).
//
//   nio-framed-echo --framing line|length4 [--port 7000] [--host 127.0.0.1]
//
// One event loop thread (`MultiThreadedEventLoopGroup(numberOfThreads: 1)`), `ServerBootstrap`,
// TCP_NODELAY on accepted connections, ChannelHandlers (no NIOAsyncChannel). Each frame is sent
// back with its framing, writes gathered until `channelReadComplete` flushes them:
//
// - `line`: `ByteToMessageHandler(LineBasedFrameDecoder())` (swift-nio-extras) hands each
//   line without its ending, as a slice of the received bytes; the handler writes it, then a
//   shared "\n" buffer.
// - `length4`: `ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength:
//   .fourBytes))` hands each payload without its prefix; the handler writes it back through
//   `LengthFieldPrepender(lengthFieldBitLength: .fourBytes)`, which writes a 4-byte
//   big-endian length buffer before it.
//
// Prints "listening on PORT" once ready. SIGINT/SIGTERM end it.
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

enum FramingKind: String {
    case line
    case length4
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Arguments {
    var framing = FramingKind.line
    var host = "127.0.0.1"
    var port = 7000

    static let usage = "usage: nio-framed-echo --framing line|length4 [--port PORT] [--host ADDRESS]"

    init(_ arguments: [String]) throws {
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            guard let value = remaining.next() else { throw UsageError("\(flag) needs a value\n\(Self.usage)") }
            switch flag {
            case "--framing":
                guard let framing = FramingKind(rawValue: value) else { throw UsageError("unknown framing \(value)\n\(Self.usage)") }
                self.framing = framing
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

/// Writes each line back, then its "\n" (one buffer shared by every write of the connection).
final class LineEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var newline: ByteBuffer?

    func handlerAdded(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 1)
        buffer.writeInteger(UInt8(ascii: "\n"))
        newline = buffer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
        context.write(wrapOutboundOut(newline!), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Writes each payload back; the `LengthFieldPrepender` before it in the pipeline adds the
/// length.
final class FrameEchoHandler: ChannelInboundHandler {
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
    let framing = arguments.framing
    do {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    switch framing {
                    case .line:
                        try pipeline.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                        try pipeline.addHandler(LineEchoHandler())
                    case .length4:
                        try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
                        try pipeline.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes)))
                        try pipeline.addHandler(FrameEchoHandler())
                    }
                }
            }
            .bind(host: arguments.host, port: arguments.port)
            .get()
        print("listening on \(channel.localAddress?.port ?? arguments.port)")
        fflush(nil)  // stdout is block-buffered into a pipe: the run script waits for this line
        try await channel.closeFuture.get()
        return 0
    } catch {
        print("nio-framed-echo: \(error)")
        return 1
    }
}

exit(await main())
