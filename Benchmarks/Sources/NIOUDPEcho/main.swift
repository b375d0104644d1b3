// nio-udp-echo: the SwiftNIO UDP echo server of the benchmarks.
//
//   nio-udp-echo [--port 7001] [--host 127.0.0.1]
//
// `DatagramBootstrap` on `MultiThreadedEventLoopGroup(numberOfThreads: 1)`, a
// `ChannelInboundHandler` that writes each `AddressedEnvelope<ByteBuffer>` back to its sender
// in `channelRead` and flushes in `channelReadComplete`; SO_RCVBUF 4 MiB like the Torus
// server, NIO's defaults otherwise. Prints "listening on PORT" once ready.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

final class UDPEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refused or failed datagram ends nothing on an unconnected socket.
    }
}

func main() async -> Int32 {
    var host = "127.0.0.1"
    var port = 7001
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        switch (flag, arguments.next()) {
        case ("--host", let value?): host = value
        case ("--port", let value?) where Int(value) != nil: port = Int(value)!
        default:
            print("usage: nio-udp-echo [--port PORT] [--host ADDRESS]")
            return 2
        }
    }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPEchoHandler())
                }
            }
            .bind(host: host, port: port)
            .get()
        print("listening on \(channel.localAddress?.port ?? port)")
        fflush(nil)
        try await channel.closeFuture.get()
        return 0
    } catch {
        print("nio-udp-echo: \(error)")
        return 1
    }
}

exit(await main())
