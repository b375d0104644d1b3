import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// A burst bigger than one receive buffer: the epoll engine reads a stream that keeps
    /// filling its buffers into several of them with one `recvmsg`, one completion each; the
    /// reader must still get every byte, in order, in chunks no larger than a buffer, and the
    /// end that came with the last bytes. Run on both engines.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(1)))
    struct ReceiveBatchTests {
        static let engines: [EventLoopGroup.EngineChoice] = [.ioUring, .epoll]

        /// 4 KiB buffers, `count` of them per loop.
        static func group(engine: EventLoopGroup.EngineChoice, buffers count: Int) throws -> EventLoopGroup {
            var configuration = EventLoop.Configuration()
            configuration.receiveBufferCount = count
            configuration.receiveBufferSize = 4096
            configuration.receiveBuffersPerConnection = 16
            return try EventLoopGroup(loopCount: 1, engine: engine, configuration: configuration)
        }

        /// 44 KiB and a FIN, queued while the reader holds the first chunk, so that one edge
        /// reports them all: the loop has 32 buffers (room for every chunk at once) or 4 (fewer
        /// than one batch wants twice over, so receives run out of buffers and resume).
        @Test(arguments: engines, [32, 4])
        func burstWithItsEndArrivesWholeInBufferSizedChunks(engine: EventLoopGroup.EngineChoice, buffers: Int) async throws {
            let group = try Self.group(engine: engine, buffers: buffers)
            let listener = try RawSocket.listening()
            let connection: Connection
            do {
                connection = try await Connection.connect(to: .ipv4(.loopback, port: listener.port), on: group.loops[0])
            } catch {
                listener.close()
                await group.shutdown()
                throw error
            }
            let peer = try listener.accept()
            listener.close()
            // Not a multiple of the buffer size, so the batch that ends the burst is short.
            let burst = (0..<(44 * 1024 + 100)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            try peer.sendAll(Array("first".utf8))
            let result: (chunks: [Int], bytes: [UInt8])
            do {
                result = try await connection.withIsolation { connection in
                    var chunks: [Int] = []
                    var bytes: [UInt8] = []
                    guard let first = try await connection.receive(timeout: .seconds(5)) else { return ([], []) }
                    // On the loop thread: the burst and the FIN are queued before the loop
                    // next waits (44 KiB fits the default socket receive buffer).
                    try peer.sendAll(burst)
                    peer.shutdownWrite()
                    chunks.append(first.count)
                    _ = consume first
                    while let next = try await connection.receive(timeout: .seconds(5)) {
                        chunks.append(next.count)
                        next.withUnsafeBytes { bytes.append(contentsOf: $0) }
                    }
                    return (chunks, bytes)
                }
            } catch {
                await connection.close()
                peer.close()
                await group.shutdown()
                throw error
            }
            await connection.close()
            peer.close()
            await group.shutdown()
            #expect(result.chunks.first == 5)
            #expect(result.chunks.allSatisfy { $0 > 0 && $0 <= 4096 })
            #expect(result.bytes.count == burst.count)
            // The first byte that differs, not the arrays (which would print 44 KiB twice).
            #expect(burst.indices.first { $0 >= result.bytes.count || result.bytes[$0] != burst[$0] } == nil)
        }
    }
}
