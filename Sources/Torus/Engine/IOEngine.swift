/// What an engine must implement: the part of an ``EventLoop`` that talks to the kernel.
///
/// An event loop is engine-free: its thread, its job queue, its executor conformances, the
/// table of operations in flight and the work that arrives after it stopped. It delegates to
/// an engine the few things that depend on how the kernel is asked: preparing an operation
/// (``IOOperation``), cancelling one, one turn of "submit, wait, collect completions", waking
/// the loop from another thread, the loop's receive buffers, and closing at exit.
///
/// Two engines exist: ``IOUringEngine`` (completion-based, one io_uring per loop) and
/// ``EpollEngine`` (readiness-based, for where io_uring is forbidden). Both deliver the same
/// ``Completion`` values, multishot operations included, so that everything above them reads
/// completions the same way.
///
/// Every method but ``wake()`` runs on the loop's thread only.
protocol IOEngine: AnyObject {
    /// Which engine this is.
    var kind: EventLoop.Engine { get }

    /// Flags the loop's sockets are created and accepted with, besides `SOCK_CLOEXEC`
    /// (`SOCK_NONBLOCK` for a readiness engine, none for io_uring).
    var socketFlags: Int32 { get }

    /// Prepares `operation`, whose completions carry `id`, for this turn. It may complete at
    /// once (its completion is then delivered by the next ``runTurn(waiting:_:)``), never
    /// during this call's caller. With `timeout`, the operation is cancelled when the timeout
    /// expires first (its completion then carries `-ECANCELED`).
    func prepare(_ operation: IOOperation, for id: OperationID, timeout: Duration?)

    /// Prepares an operation nobody waits for (a close or cancel whose result does not matter).
    func prepareDetached(_ operation: IOOperation)

    /// Asks operation `id` to end early. Its final completion still comes, with
    /// `-ECANCELED` unless it had completed first.
    func cancel(_ id: OperationID)

    /// One turn: submits what was prepared, waits until at least one completion or wake-up
    /// arrives when `waiting` (else only collects what is ready), and hands each completion to
    /// `deliver`. Operations `deliver` prepares go out with the next turn.
    func runTurn(waiting: Bool, _ deliver: (OperationID, Completion) -> Void)

    /// Ends the loop's wait from any thread.
    func wake()

    /// Wakes `target` (another loop's engine) from this loop's thread without a system call of
    /// its own, if this engine can; returns false when the caller must use `target.wake()`.
    func postWake(to target: any IOEngine) -> Bool

    /// Bytes per receive buffer.
    var receiveBufferSize: Int { get }
    /// Where receive buffer `id` starts.
    func receiveBufferAddress(_ id: UInt16) -> UnsafeMutableRawPointer
    /// Takes receive buffer `id` back for the next receive.
    func recycleReceiveBuffer(_ id: UInt16)

    /// Releases the engine's kernel resources when the loop thread exits; whatever is still
    /// in flight is abandoned.
    func close()
}

extension EventLoop {
    /// How an event loop waits for and performs I/O.
    public enum Engine: String, Sendable, Hashable, CustomStringConvertible {
        /// io_uring: every socket operation is a submission, every result a completion
        /// (Linux 6.1 or later, where io_uring is allowed).
        case ioUring = "io_uring"
        /// epoll: non-blocking system calls made when a socket is ready. Serves where io_uring
        /// is forbidden (Docker's and containerd's default seccomp profiles, gVisor,
        /// `kernel.io_uring_disabled`).
        case epoll

        /// `io_uring` or `epoll`.
        public var description: String { rawValue }
    }
}
