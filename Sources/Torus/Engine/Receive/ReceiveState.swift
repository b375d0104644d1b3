#if canImport(Glibc)
import Glibc
#endif

/// The decisions of one socket's receive into its loop's buffers, within its share: when to
/// arm the multishot receive, what to do with each buffer it brings, when to pause it, when
/// to wait for buffers, and what the reader may learn. A value with no kernel in it, so that
/// every path can be tested on its own; ``Receiver`` carries its decisions out.
///
/// The same rules serve streams and datagrams:
/// - Receiving starts with the first wait and runs ahead of the reader by at most `share`
///   entries (buffers lent out count, and so do bytes copied out past the share: a reader
///   that keeps giving buffers back while it falls behind must not let copies pile up).
///   At the share the receive is paused (cancelled), and armed again once the reader
///   catches up.
/// - The engine may fill more buffers before the pause takes effect; those past the share
///   are copied out so the buffer goes straight back.
/// - `ENOBUFS` (the loop has no buffer left) waits for a buffer to come back, never a timer;
///   an `ENOBUFS` that is stale (buffers came back meanwhile) arms again at once.
/// - A stream ends at end of stream or at its first error. A datagram socket's error is
///   reported once, to the next call, and receiving goes on after it.
/// - A draining stream (its server is shutting down) is armed only while the reader waits for
///   bytes the kernel already holds, so that once it has them the receive can be stopped and
///   the reader told the end: a receive that stays armed could always have brought more.
struct ReceiveState {
    enum Kind {
        case stream, datagram
    }

    /// What to do with the buffer a completion brought.
    enum BufferUse: Equatable {
        /// Queue it for the reader as it is (within the share).
        case lend
        /// Copy its bytes out and give it back (past the share).
        case copy
        /// Give it back at once (closed, or nothing in it).
        case giveBack
    }

    /// What a completion of the receive calls for.
    struct Outcome: Equatable {
        /// For the buffer the completion brought, if any.
        var buffer: BufferUse?
        /// Ask the receive to stop: the share is reached.
        var pause = false
        /// Join the loop's waiters for a returned buffer.
        var waitForBuffers = false
        /// Arm a new receive: the previous one ended and nothing stands in the way.
        var arm = false
    }

    let kind: Kind
    /// Entries the socket may hold before it stops receiving.
    let share: Int

    private(set) var isStarted = false
    /// A receive is in flight (until its final completion).
    private(set) var isArmed = false
    /// The receive in flight was asked to stop.
    private(set) var isPausing = false
    private(set) var isWaitingForBuffers = false
    private(set) var isClosed = false
    /// The stream's end arrived (after the entries queued before it).
    private(set) var reachedEnd = false
    /// The errno the receive failed with, after the entries queued before it. Final for a
    /// stream; for a datagram socket, until ``takeFailure()``.
    private(set) var failure: Int32?
    /// Buffers lent to this socket and not given back: queued, or handed out to the reader.
    private(set) var held = 0
    /// Entries waiting for the reader, lent or copied.
    private(set) var queued = 0
    /// The stream drains: see ``drain()``.
    private(set) var isDraining = false
    /// While draining: the reader waits, and the kernel holds bytes for it (set and cleared by
    /// the reader's side around each wait).
    var drainingReaderWaits = false

    init(kind: Kind, share: Int) {
        self.kind = kind
        self.share = max(1, share)
    }

    /// Whether the reader has something to look at: an entry, the end or an error.
    var hasNews: Bool { queued > 0 || reachedEnd || failure != nil }

    /// The reader waits for the first time: receiving may start.
    mutating func start() { isStarted = true }

    /// Whether to arm a receive now; once it says yes, the receive counts as armed.
    mutating func shouldArm() -> Bool {
        guard isStarted, !isArmed, !isClosed, !reachedEnd, failure == nil, !isWaitingForBuffers,
              held < share, queued < share, !isDraining || drainingReaderWaits else { return false }
        isArmed = true
        return true
    }

    /// The receive could not be armed: the loop is stopping.
    mutating func armFailed() {
        isArmed = false
        failure = ESHUTDOWN
    }

    /// A completion of the armed receive: its `result` (bytes, 0, or `-errno`), whether the
    /// receive stays armed (`hasMore`), whether it brought a buffer worth queueing
    /// (`usableBuffer`: a buffer with bytes, or a whole datagram; nil when it brought none),
    /// and whether the loop has a free buffer now (for `ENOBUFS`).
    mutating func completed(result: Int32, hasMore: Bool, usableBuffer: Bool?, buffersFree: Bool) -> Outcome {
        var outcome = Outcome()
        if !hasMore {
            isArmed = false
            isPausing = false
        }
        if let usable = usableBuffer {
            if isClosed || !usable {
                outcome.buffer = .giveBack
            } else if held < share {
                outcome.buffer = .lend
                held += 1
                queued += 1
            } else {
                outcome.buffer = .copy
                queued += 1
            }
        }
        switch kind {
        case .stream where result == 0:
            reachedEnd = true
        case _ where result == -ENOBUFS:
            if !buffersFree {
                isWaitingForBuffers = true
                outcome.waitForBuffers = true
            }
        case _ where result == -ECANCELED:
            break  // We paused it, or closed.
        case _ where result < 0:
            if !isClosed, failure == nil { failure = -result }
        default:
            break
        }
        if isArmed, !isPausing, held >= share || queued >= share {
            isPausing = true
            outcome.pause = true
        }
        if !hasMore { outcome.arm = shouldArm() }
        return outcome
    }

    /// The reader took an entry, or consumed all of one. Returns whether to arm a receive.
    mutating func consumed() -> Bool {
        queued -= 1
        return shouldArm()
    }

    /// A lent buffer came back. Returns whether to arm a receive.
    mutating func bufferReturned() -> Bool {
        held -= 1
        return shouldArm()
    }

    /// The loop has a buffer again. Returns nil if this socket no longer waits for one, else
    /// whether to arm a receive.
    mutating func buffersAvailable() -> Bool? {
        guard isWaitingForBuffers else { return nil }
        isWaitingForBuffers = false
        return shouldArm()
    }

    /// Takes a datagram socket's error for reporting; receiving may go on after it.
    mutating func takeFailure() -> Int32? {
        defer { if kind == .datagram { failure = nil } }
        return failure
    }

    /// From now on, arms only while ``drainingReaderWaits``.
    mutating func drain() { isDraining = true }

    /// The draining reader found nothing queued and nothing in the kernel: the receive in
    /// flight, if any, is to stop, and its final completion (after any it still brings) will
    /// say that nothing more is on its way. Returns whether to cancel it.
    mutating func stopForDrain() -> Bool {
        guard isArmed, !isPausing else { return false }
        isPausing = true
        return true
    }

    /// Stops receiving for good. Returns whether a receive in flight must be cancelled.
    mutating func close() -> Bool {
        guard !isClosed else { return false }
        isClosed = true
        isWaitingForBuffers = false
        return isArmed
    }

    /// Queued entries given back at close (they never reach the reader).
    mutating func discardQueued() { queued = 0 }
}
