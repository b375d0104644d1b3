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
        submitDetached(.cancelAll(fd))
    }
}
