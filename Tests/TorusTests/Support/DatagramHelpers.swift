import Testing
import Torus

/// Runs a Torus UDP echo server bound to `address` while `body` runs (it sends every
/// datagram back to its sender, zero copy), then closes it and waits for its task to end. A
/// server error fails the call.
func withDatagramEchoServer<T: Sendable>(
    on address: SocketAddress = .ipv4(.loopback, port: 0),
    options: DatagramSocket.Options = .init(),
    _ body: (SocketAddress) async throws -> T
) async throws -> T {
    let server = try await DatagramSocket(bindingTo: address, options: options)
    let serving = Task {
        try await server.withIsolation { server in
            while let datagram = try await receiveUnlessClosed(server) {
                try await datagram.bytes.withUnsafeBytes { try await server.send($0, to: datagram.sender) }
            }
        }
    }
    let result: T
    do {
        result = try await body(server.localAddress)
    } catch {
        await server.close()
        _ = try? await serving.value
        throw error
    }
    await server.close()
    try await serving.value
    return result
}

/// The next datagram, or nil once `socket` is closed.
func receiveUnlessClosed(_ socket: isolated DatagramSocket) async throws -> ReceivedDatagram? {
    do {
        return try await socket.receive()
    } catch let error as TorusError where error.kind == .connectionClosed {
        return nil
    }
}

/// A payload whose bytes derive from `sender` and `sequence`, with a 5-byte header naming
/// them, so that a receiver can check every byte without knowing the order of arrival.
func tagged(sender: UInt8, sequence: UInt32, size: Int) -> [UInt8] {
    precondition(size >= 5)
    var bytes = [sender]
    withUnsafeBytes(of: sequence.littleEndian) { bytes.append(contentsOf: $0) }
    var value = UInt32(sender) &* 2_654_435_761 &+ sequence &* 40503
    for _ in 5..<size {
        value = value &* 1_103_515_245 &+ 12345
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
    }
    return bytes
}

/// The sender and sequence a ``tagged(sender:sequence:size:)`` payload names.
func tag(of bytes: UnsafeRawBufferPointer) -> (sender: UInt8, sequence: UInt32)? {
    guard bytes.count >= 5 else { return nil }
    return (bytes[0], UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt32.self)))
}

/// Keeps a received datagram (and its receive buffer) until dropped: arrays cannot hold
/// `~Copyable` values directly.
final class HeldDatagram {
    let datagram: ReceivedDatagram
    init(_ datagram: consuming ReceivedDatagram) { self.datagram = datagram }
}
