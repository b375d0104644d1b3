// udp-echo-server: sends every datagram it receives back to its sender.
//
//   swift run udp-echo-server [--host 127.0.0.1] [--port 7001]
//
// One socket on one event loop. The handler runs isolated to the socket, on its loop, and
// sends each datagram back straight out of the receive buffer the kernel filled: no copy,
// no thread hop. A datagram too large for a receive buffer arrives truncated; the server
// says so on standard error and echoes the part it got. SIGTERM or SIGINT stops it (exit 0).
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error.
func warn(_ message: String) {
    var line = "udp-echo-server: \(message)\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

func main() async -> Int32 {
    await ExampleServer.run(name: "udp-echo-server") {
        let options = try ExampleOptions(
            CommandLine.arguments.dropFirst(), accepting: ["host", "port"],
            usage: "usage: udp-echo-server [--host ADDRESS] [--port PORT]")
        let address = try SocketAddress(host: options.string("host", default: "127.0.0.1"), port: options.port("port", default: 7001))
        let socket = try await DatagramSocket(bindingTo: address)
        print("udp-echo-server listening on \(socket.localAddress)")
        fflush(nil)  // Into a pipe, stdout is block-buffered: scripts wait for this line.
        // Until a signal cancels this task: the waiting receive then throws CancellationError,
        // which ExampleServer.run counts as a clean stop.
        try await socket.withIsolation { socket in
            while true {
                let datagram = try await socket.receive()
                if datagram.isTruncated {
                    warn("\(datagram.originalCount)-byte datagram from \(datagram.sender) truncated to \(datagram.count)")
                }
                do {
                    try await datagram.bytes.withUnsafeBytes { try await socket.send($0, to: datagram.sender) }
                } catch let error as TorusError {
                    // One sender's trouble (its port closed, say) must not stop the server.
                    warn("\(error)")
                }
            }
        }
    }
}

exit(await main())
