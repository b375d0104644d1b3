// nio-http-hello: a raw SwiftNIO HTTP/1.1 server, the floor NIO offers for `http-hello` in
// `Benchmarks/run --http`.
//
//   nio-http-hello [--host 127.0.0.1] [--port 8080]
//
// `configureHTTPServerPipeline` (keep-alive and pipelining handled by NIO) and one
// `ChannelInboundHandler` that answers every request with `Hello, World!` (404 off `/`),
// flushing once per read batch. One event loop thread. Prints "listening on PORT".
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

final class HelloHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            let found = head.uri == "/"
            let body = found ? "Hello, World!" : "Not Found"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            let response = HTTPResponseHead(version: head.version, status: found ? .ok : .notFound, headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            if head.isKeepAlive {
                context.write(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                let written = context.eventLoop.makePromise(of: Void.self)
                context.write(wrapOutboundOut(.end(nil)), promise: written)
                let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                written.futureResult.whenComplete { _ in loopContext.value.close(promise: nil) }
            }
            self.head = nil
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

var host = "127.0.0.1"
var port = 8080
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let flag = arguments.next() {
    guard let value = arguments.next() else { fatalError("\(flag) needs a value") }
    switch flag {
    case "--host": host = value
    case "--port": port = Int(value) ?? 8080
    default: fatalError("usage: nio-http-hello [--host ADDRESS] [--port PORT]")
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try await ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(HelloHandler())
        }
    }
    .bind(host: host, port: port)
    .get()
print("listening on \(channel.localAddress?.port ?? 0)")
fflush(nil)
try await channel.closeFuture.get()
