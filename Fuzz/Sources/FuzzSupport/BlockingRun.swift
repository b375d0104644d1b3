#if canImport(Glibc)
import Glibc
#endif

/// Runs async `work` to its end from a plain thread (libFuzzer calls its target on its own
/// thread, outside Swift concurrency), blocking that thread meanwhile.
public func runBlocking(_ work: @escaping @Sendable () async -> Void) {
    let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    sem_init(done, 0, 0)
    defer {
        sem_destroy(done)
        done.deallocate()
    }
    // The pointer outlives the task: this function waits for it.
    nonisolated(unsafe) let signal = done
    Task {
        await work()
        sem_post(signal)
    }
    while sem_wait(done) != 0 {}
}
