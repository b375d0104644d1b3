// hummingbird-hello: the Hummingbird 2 reference for `http-hello` in `Benchmarks/run --http`.
//
//   hummingbird-hello [--host 127.0.0.1] [--port 8080]
//
// `GET /` answers `Hello, World!`, like the Torus example. One NIO event loop thread, so
// that it compares with the one-loop Torus server. Prints "listening on PORT" once ready
// (port 0 picks a free port).
import Hummingbird
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

var host = "127.0.0.1"
var port = 8080
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let flag = arguments.next() {
    guard let value = arguments.next() else { fatalError("\(flag) needs a value") }
    switch flag {
    case "--host": host = value
    case "--port": port = Int(value) ?? 8080
    default: fatalError("usage: hummingbird-hello [--host ADDRESS] [--port PORT]")
    }
}

let router = Router()
router.get("/") { _, _ in "Hello, World!" }
let application = Application(
    router: router,
    configuration: .init(address: .hostname(host, port: port)),
    onServerRunning: { channel in
        print("listening on \(channel.localAddress?.port ?? 0)")
        fflush(nil)
    },
    eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: 1))
)
try await application.runService()
