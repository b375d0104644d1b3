import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// The receive state machine on its own, no socket and no kernel: the decisions that both
    /// engines' multishot receives rely on, for streams and datagrams.
    @Suite struct ReceiveStateTests {
        /// The state under test, in a box: `#expect` evaluates its expression in a closure,
        /// which cannot call a mutating method on a local variable.
        private final class Machine {
            var state: ReceiveState
            init(_ kind: ReceiveState.Kind, share: Int) { state = ReceiveState(kind: kind, share: share) }
            func start() { state.start() }
            func shouldArm() -> Bool { state.shouldArm() }
            func completed(result: Int32, hasMore: Bool, usableBuffer: Bool?, buffersFree: Bool) -> ReceiveState.Outcome {
                state.completed(result: result, hasMore: hasMore, usableBuffer: usableBuffer, buffersFree: buffersFree)
            }
            func consumed() -> Bool { state.consumed() }
            func bufferReturned() -> Bool { state.bufferReturned() }
            func buffersAvailable() -> Bool? { state.buffersAvailable() }
            func takeFailure() -> Int32? { state.takeFailure() }
            func close() -> Bool { state.close() }
            func drain() { state.drain() }
            func stopForDrain() -> Bool { state.stopForDrain() }
            func readerWaits(_ waits: Bool) { state.drainingReaderWaits = waits }
            var isArmed: Bool { state.isArmed }
            var held: Int { state.held }
            var queued: Int { state.queued }
            var hasNews: Bool { state.hasNews }
            var reachedEnd: Bool { state.reachedEnd }
            var failure: Int32? { state.failure }
        }

        /// A state that has started and armed its first receive.
        private static func armed(_ kind: ReceiveState.Kind, share: Int) -> Machine {
            let machine = Machine(kind, share: share)
            machine.start()
            #expect(machine.shouldArm())
            return machine
        }

        private static func bytes(_ machine: Machine, hasMore: Bool = true, buffersFree: Bool = true) -> ReceiveState.Outcome {
            machine.completed(result: 100, hasMore: hasMore, usableBuffer: true, buffersFree: buffersFree)
        }

        @Test func nothingIsArmedBeforeTheFirstWaitNorTwice() {
            let state = Machine(.stream, share: 4)
            #expect(!state.shouldArm())
            state.start()
            #expect(state.shouldArm())
            #expect(!state.shouldArm(), "one receive at a time")
        }

        @Test(arguments: [ReceiveState.Kind.stream, .datagram])
        func reachingTheShareLendsThenPausesThenCopiesWhatTheEngineDeliversMeanwhile(kind: ReceiveState.Kind) {
            let state = Self.armed(kind, share: 2)
            #expect(Self.bytes(state) == .init(buffer: .lend))
            #expect(Self.bytes(state) == .init(buffer: .lend, pause: true))
            // The engine filled one more before the pause reached it: copied, no second pause.
            #expect(Self.bytes(state) == .init(buffer: .copy))
            // The pause ends the receive; with the share held, it is not armed again.
            #expect(state.completed(result: -ECANCELED, hasMore: false, usableBuffer: nil, buffersFree: true) == .init())
            #expect(state.held == 2 && state.queued == 3)
            // The reader takes the copy and one lent buffer: still two queued, held two.
            #expect(!state.consumed())
            #expect(!state.consumed())
            // The lent buffer it took comes back: below the share again, armed again.
            #expect(state.bufferReturned())
        }

        /// The bound a slow reader cannot get around by giving buffers back quickly: bytes
        /// copied out past the share count toward it too (datagram sockets lacked this).
        @Test(arguments: [ReceiveState.Kind.stream, .datagram])
        func copiesCountTowardTheShareSoAReaderGivingBuffersBackCannotPileThemUp(kind: ReceiveState.Kind) {
            let state = Self.armed(kind, share: 2)
            _ = Self.bytes(state)
            _ = Self.bytes(state)
            _ = Self.bytes(state)
            _ = Self.bytes(state)
            _ = state.completed(result: -ECANCELED, hasMore: false, usableBuffer: nil, buffersFree: true)
            // Both lent buffers come back (read by copying, say), two copies still queued.
            #expect(!state.bufferReturned())
            #expect(!state.bufferReturned())
            #expect(state.held == 0)
            #expect(state.queued == 4)
            #expect(!state.shouldArm(), "four entries queued against a share of two")
            #expect(!state.consumed())
            #expect(!state.consumed(), "two queued: at the share, not below it")
            #expect(state.consumed())
        }

        /// Draining: the receive in flight is stopped once (its final completion then arms
        /// nothing), and a receive is armed again only while the reader waits for bytes the
        /// kernel holds; the share still applies then.
        @Test func aDrainingStreamArmsOnlyWhileTheReaderWaitsForBytesTheKernelHolds() {
            let state = Self.armed(.stream, share: 2)
            _ = Self.bytes(state)
            state.drain()
            #expect(state.stopForDrain())
            #expect(!state.stopForDrain(), "asked to stop once")
            // A buffer the engine filled before the stop reached it still queues.
            #expect(Self.bytes(state) == .init(buffer: .lend))
            #expect(state.completed(result: -ECANCELED, hasMore: false, usableBuffer: nil, buffersFree: true) == .init())
            #expect(!state.isArmed)
            #expect(!state.stopForDrain(), "nothing in flight to stop")
            // The reader takes both and gives them back: below the share, but not waiting.
            #expect(!state.consumed())
            #expect(!state.consumed())
            #expect(!state.bufferReturned())
            #expect(!state.bufferReturned())
            // It waits, and the kernel holds bytes: armed.
            state.readerWaits(true)
            #expect(state.shouldArm())
            state.readerWaits(false)
            // A multishot receive that ends by itself while nobody waits is not armed again.
            #expect(Self.bytes(state, hasMore: false) == .init(buffer: .lend))
            #expect(!state.isArmed)
        }

        @Test func aMultishotReceiveThatEndsWithoutAnErrorIsArmedAgain() {
            let state = Self.armed(.stream, share: 4)
            // The kernel ends a multishot receive now and then (CQ overflow among others).
            #expect(Self.bytes(state, hasMore: false) == .init(buffer: .lend, arm: true))
        }

        @Test func runningOutOfBuffersWaitsForOneToComeBackNotForATimer() {
            let state = Self.armed(.stream, share: 4)
            let outcome = state.completed(result: -ENOBUFS, hasMore: false, usableBuffer: nil, buffersFree: false)
            #expect(outcome == .init(waitForBuffers: true))
            #expect(!state.shouldArm())
            #expect(state.buffersAvailable() == true)
            #expect(state.buffersAvailable() == nil, "no longer waiting")
        }

        @Test func aStaleOutOfBuffersArmsAgainAtOnce() {
            let state = Self.armed(.datagram, share: 4)
            // Buffers came back between the engine finding none and this completion.
            let outcome = state.completed(result: -ENOBUFS, hasMore: false, usableBuffer: nil, buffersFree: true)
            #expect(outcome == .init(arm: true))
        }

        @Test func closingWhilePausedCancelsOnceAndNeverArmsAgain() {
            let state = Self.armed(.stream, share: 1)
            #expect(Self.bytes(state) == .init(buffer: .lend, pause: true))
            #expect(state.close(), "the receive is still in flight: cancel it")
            #expect(!state.close(), "closing twice does nothing")
            // What the engine still delivers goes straight back.
            #expect(Self.bytes(state) == .init(buffer: .giveBack))
            #expect(state.completed(result: -ECANCELED, hasMore: false, usableBuffer: nil, buffersFree: true) == .init())
            #expect(!state.bufferReturned())
            #expect(!state.shouldArm())
        }

        @Test func closingWhileWaitingForBuffersStopsWaiting() {
            let state = Self.armed(.stream, share: 4)
            _ = state.completed(result: -ENOBUFS, hasMore: false, usableBuffer: nil, buffersFree: false)
            #expect(!state.close(), "nothing in flight to cancel")
            #expect(state.buffersAvailable() == nil)
        }

        @Test func aStreamEndsAtEndOfStreamAndAtItsFirstErrorForGood() {
            let ended = Self.armed(.stream, share: 4)
            _ = Self.bytes(ended)
            let end = ended.completed(result: 0, hasMore: false, usableBuffer: nil, buffersFree: true)
            #expect(end == .init())
            #expect(ended.reachedEnd && ended.hasNews)

            let failed = Self.armed(.stream, share: 4)
            #expect(failed.completed(result: -ECONNRESET, hasMore: false, usableBuffer: nil, buffersFree: true) == .init())
            #expect(failed.takeFailure() == ECONNRESET)
            #expect(failed.failure == ECONNRESET, "a stream's error is final")
            #expect(!failed.shouldArm())
        }

        @Test func aDatagramErrorIsReportedOnceAndReceivingGoesOn() {
            let state = Self.armed(.datagram, share: 4)
            _ = state.completed(result: -ECONNREFUSED, hasMore: false, usableBuffer: nil, buffersFree: true)
            #expect(state.hasNews)
            #expect(!state.shouldArm(), "not before the error is reported")
            #expect(state.takeFailure() == ECONNREFUSED)
            #expect(state.takeFailure() == nil)
            #expect(state.shouldArm())
        }

        @Test func anEmptyOrUnreadableBufferGoesBackWithoutCounting() {
            let state = Self.armed(.datagram, share: 4)
            #expect(state.completed(result: 10, hasMore: true, usableBuffer: false, buffersFree: true) == .init(buffer: .giveBack))
            #expect(state.held == 0 && state.queued == 0 && !state.hasNews)
        }
    }
}
