import Synchronization

/// The lines waiting to be written to one chat client: a bounded queue filled by the room
/// (from whichever loop the sender is on) and drained by the client's own writer task.
///
/// Bounded in bytes so that a client that does not read cannot make the server hold an
/// unbounded backlog for it: when a line would take it past `capacity` bytes, ``push(_:)``
/// refuses it, and the room drops that client. (Bytes rather than lines: one 16 KiB receive
/// can hold thousands of short lines, so a line count would drop fast readers too.) A `Mutex` guards the state because the room and the
/// writer may run on different loops.
final class ChatOutbox: Sendable {
    private struct State {
        var lines: [[UInt8]] = []
        var bytes = 0
        var waiter: UnsafeContinuation<[[UInt8]]?, Never>?
        var closed = false
    }

    /// The most bytes held for a client that is not keeping up.
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Queues `line` for the writer. Returns false, and queues nothing, when the outbox is
    /// closed or full (the client is not keeping up).
    func push(_ line: [UInt8]) -> Bool {
        let (accepted, waiter): (Bool, UnsafeContinuation<[[UInt8]]?, Never>?) = state.withLock { state in
            guard !state.closed, state.bytes + line.count <= capacity || state.lines.isEmpty else { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.lines.append(line)
            state.bytes += line.count
            return (true, nil)
        }
        waiter?.resume(returning: [line])  // Outside the lock: the writer may run at once.
        return accepted
    }

    /// Ends the queue: the writer gets what is queued, then nil.
    func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Every queued line (waiting for one if there is none); nil once closed and empty.
    /// One task at a time may wait.
    func next() async -> [[UInt8]]? {
        await withUnsafeContinuation { continuation in
            let ready: [[UInt8]]?? = state.withLock { state in
                if !state.lines.isEmpty {
                    defer {
                        state.lines.removeAll(keepingCapacity: true)
                        state.bytes = 0
                    }
                    return .some(state.lines)
                }
                if state.closed { return .some(nil) }
                precondition(state.waiter == nil, "one writer per outbox")
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
