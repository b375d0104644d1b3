// torus-udp-echo: the Torus UDP echo server of the benchmarks.
//
//   torus-udp-echo [--port 7001] [--host 127.0.0.1]
//
// One event loop (`EventLoopGroup(loopCount: 1)`), one `DatagramSocket` on it, the handler
// isolated to the socket (`withIsolation`), each datagram sent back straight out of its
// receive buffer (`receive()` then `send(_:to:)` from the buffer: no copy). Prints
// "listening on PORT" once ready. SIGINT/SIGTERM end it.
import Torus

#if canImport(Glibc)
import Glibc
#endif

func main() async -> Int32 {
    var host = "127.0.0.1"
    var port: UInt16 = 7001
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        switch (flag, arguments.next()) {
        case ("--host", let value?): host = value
        case ("--port", let value?) where UInt16(value) != nil: port = UInt16(value)!
        default:
            print("usage: torus-udp-echo [--port PORT] [--host ADDRESS]")
            return 2
        }
    }
    do {
        let group = try EventLoopGroup(loopCount: 1)
        let socket = try await DatagramSocket(
            bindingTo: try SocketAddress(host: host, port: port),
            options: .init(receiveBufferSize: 4 << 20), on: group.loops[0])
        print("listening on \(socket.localAddress.port ?? port)")
        fflush(nil)  // stdout is block-buffered into a pipe: the run script waits for this line
        try await socket.withIsolation { socket in
            while true {
                let datagram = try await socket.receive()
                try? await datagram.bytes.withUnsafeBytes { try await socket.send($0, to: datagram.sender) }
            }
        }
        return 0
    } catch {
        print("torus-udp-echo: \(error)")
        return 1
    }
}

exit(await main())
