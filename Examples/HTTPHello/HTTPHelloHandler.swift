import ExampleProtocols
import Torus

/// Serves one HTTP/1.1 connection until the client closes it, asks to close, sends a bad
/// request, stays idle too long, or takes longer than the idle timeout to send a request head
/// (a slowloris trickling one byte at a time is cut there, not after 16 KiB).
enum HTTPHelloHandler {
    /// Runs isolated to the connection, on its loop: receives, parses every complete request
    /// in what arrived, answers them all with one write, and waits for more.
    static func serve(_ connection: isolated Connection, idleTimeout: Duration) async {
        var parser = HTTPRequestParser()
        var output: [UInt8] = []
        output.reserveCapacity(4096)
        var request: HTTPRequestHead?
        var closing = false
        /// Whether the next event the parser can give is a request head.
        var awaitingHead = true
        /// When the request head begun by bytes already received must be complete.
        var headDeadline: ContinuousClock.Instant?
        do {
            while !closing {
                var timeout = idleTimeout
                if let headDeadline {
                    let left = headDeadline - .now
                    if left <= .zero { break }
                    timeout = min(timeout, left)
                }
                guard let bytes = try await connection.receive(timeout: timeout) else { break }
                bytes.withUnsafeBytes { parser.append($0) }
                _ = consume bytes  // Give the receive buffer back before writing.
                do {
                    parsing: while let event = try parser.next() {
                        switch event {
                        case .head(let head):
                            request = head
                            awaitingHead = false
                            headDeadline = nil
                        case .body:
                            break  // This server ignores bodies; the parser frames them.
                        case .end:
                            awaitingHead = true
                            guard let head = request else { continue }
                            HTTPHelloResponses.answer(head, into: &output)
                            if !head.keepAlive {
                                closing = true
                                break parsing  // Anything pipelined after it is not answered.
                            }
                        }
                    }
                } catch {
                    HTTPHelloResponses.fail(error, into: &output)
                    closing = true
                }
                if awaitingHead, parser.bufferedCount > 0, headDeadline == nil {
                    headDeadline = .now + idleTimeout
                }
                if !output.isEmpty {
                    try await connection.write(output)
                    output.removeAll(keepingCapacity: true)
                }
            }
        } catch {
            // Idle timeout, reset, or a failed write: this connection ends, nothing else does.
        }
        await connection.close()
    }
}
