import CURing

extension EventLoop {
    /// Runs `body` on this loop's thread: directly when already there, else with this loop as
    /// the task's preferred executor.
    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if isInEventLoop { return try await body() }
        return try await withTaskExecutorPreference(self, operation: body)
    }

    /// Cancels every operation in flight on `fd` without waiting (used before a close, so
    /// reads and writes blocked on the socket end promptly).
    func cancelOperations(on fd: CInt) {
        assertInEventLoop()
        _ = submit(handledBy: IgnoredCompletions.shared) { sqe, _ in
            io_uring_prep_cancel_fd(sqe, fd, UInt32(IORING_ASYNC_CANCEL_ALL))
        }
    }
}

/// A handler for requests whose completions need no action.
final class IgnoredCompletions: CompletionHandler, Sendable {
    static let shared = IgnoredCompletions()
    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop) {}
}
