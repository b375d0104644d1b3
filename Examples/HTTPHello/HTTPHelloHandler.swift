import ExampleProtocols
import Torus

/// Serves one HTTP/1.1 connection until the client closes it, asks to close, sends a bad
/// request, or leaves more than the idle timeout between the end of one answer and the end
/// of the next request head (so a slowloris trickling a head one byte at a time is cut there,
/// not after 16 KiB).
enum HTTPHelloHandler {
    /// Runs isolated to the stream (a connection, or a TLS stream over one), on its loop:
    /// decodes every request that arrived, in place in the receive buffer, answers them all
    /// with one write, and reads on.
    static func serve(_ connection: isolated some ByteStream, idleTimeout: Duration) async {
        let reader = BufferedReader(connection)
        var decoder = HTTPRequestDecoder()
        var output: [UInt8] = []
        output.reserveCapacity(4096)
        do {
            // The timeout covers a whole frame: the wait for a request and all of its head.
            reading: while let requests = try await reader.readFrame(using: &decoder, timeout: idleTimeout) {
                for head in requests {
                    HTTPHelloResponses.answer(head, into: &output)
                    if !head.keepAlive {
                        try await connection.write(output)
                        break reading  // Anything pipelined after it is not answered.
                    }
                }
                if !output.isEmpty {
                    try await connection.write(output)
                    output.removeAll(keepingCapacity: true)
                }
            }
        } catch let error as HTTPParseError {
            HTTPHelloResponses.fail(error, into: &output)
            try? await connection.write(output)
        } catch {
            // Idle timeout, reset, or a failed write: this connection ends, nothing else does.
        }
        await connection.close()
    }
}
