import Synchronization
import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

/// A flag one task raises and another polls.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    var isRaised: Bool { raised.load(ordering: .acquiring) }
    func raise() { raised.store(true, ordering: .releasing) }
}

extension OnLoop {
    /// Nops back to back until `flag` is raised, telling `started` after the first: every
    /// turn of the loop then has a completion to deliver and a job to run. Returns the count.
    func nops(until flag: StopFlag, started: AsyncStream<Void>.Continuation) async -> Int {
        var count = 0
        while !flag.isRaised {
            _ = await loop.nop()
            count += 1
            if count == 1 { started.yield() }
        }
        started.finish()
        return count
    }
}

extension TorusTests {
    /// A loop that never runs out of work still serves its descriptors: the epoll engine
    /// skips the zero-timeout `epoll_wait` on every other busy turn, never on all of them.
    @Suite(.noDescriptorLeaks, .timeLimit(.minutes(1)))
    struct BusyLoopTests {
        @Test(arguments: [EventLoopGroup.EngineChoice.ioUring, .epoll])
        func bytesArriveWhileTheLoopAlwaysHasWork(engine: EventLoopGroup.EngineChoice) async throws {
            let group = try EventLoopGroup(loopCount: 1, engine: engine)
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
            // A first read takes everything queued, so that the next one waits for the
            // kernel to say more arrived (on epoll: for an epoll_wait).
            try peer.sendAll(Array("first".utf8))
            let first = try await connection.read(timeout: .seconds(5))

            let flag = StopFlag()
            let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
            let spinner = OnLoop(group.loops[0])
            let spinning = Task { await spinner.nops(until: flag, started: startedContinuation) }
            for await _ in started { break }

            let read: Result<[UInt8]?, any Error>
            do {
                // Whether the read waits before the bytes arrive or not, only a poll tells of them.
                try peer.sendAll(Array("ping".utf8))
                read = .success(try await connection.read(timeout: .seconds(5)))
            } catch {
                read = .failure(error)
            }
            flag.raise()
            let nops = await spinning.value
            await connection.close()
            peer.close()
            await group.shutdown()
            #expect(first == Array("first".utf8))
            #expect(try read.get() == Array("ping".utf8), "the read must not wait for the loop to run out of work")
            #expect(nops > 0)
        }
    }
}
