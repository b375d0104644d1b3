// nio-https-hello: nio-http-hello behind NIOSSL, the SwiftNIO reference for Torus's
// `http-hello --tls-cert … --tls-key …` in `Benchmarks/run --https`.
//
//   nio-https-hello --tls-cert FILE --tls-key FILE [--host 127.0.0.1] [--port 8443]
//
// The same pipeline as nio-http-hello (`configureHTTPServerPipeline` and one handler that
// answers `Hello, World!`, 404 off `/`, flushing once per read batch) with
// `NIOSSLServerHandler` first. NIOSSL's `TLSConfiguration.makeServerConfiguration` with the
// PEM files and its defaults otherwise (TLS 1.2 to 1.3, BoringSSL's cipher order, session
// tickets on), ALPN `http/1.1`. One event loop thread. Prints "listening on PORT".
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

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
                // Close after the response is written; NIOSSL sends close_notify first.
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client that goes away without close_notify (wrk at the end of a run) is not news.
        context.close(promise: nil)
    }
}

var host = "127.0.0.1"
var port = 8443
var certificatePath: String?
var keyPath: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let flag = arguments.next() {
    guard let value = arguments.next() else { fatalError("\(flag) needs a value") }
    switch flag {
    case "--host": host = value
    case "--port": port = Int(value) ?? 8443
    case "--tls-cert": certificatePath = value
    case "--tls-key": keyPath = value
    default: fatalError("usage: nio-https-hello --tls-cert FILE --tls-key FILE [--host ADDRESS] [--port PORT]")
    }
}
guard let certificatePath, let keyPath else {
    fatalError("usage: nio-https-hello --tls-cert FILE --tls-key FILE [--host ADDRESS] [--port PORT]")
}

let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
var configuration = TLSConfiguration.makeServerConfiguration(
    certificateChain: chain.map { .certificate($0) },
    privateKey: .privateKey(key)
)
configuration.applicationProtocols = ["http/1.1"]
let sslContext = try NIOSSLContext(configuration: configuration)

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try await ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(HelloHandler())
        }
    }
    .bind(host: host, port: port)
    .get()
print("listening on \(channel.localAddress?.port ?? 0)")
fflush(nil)
try await channel.closeFuture.get()
