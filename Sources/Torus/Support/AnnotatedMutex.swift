import CURing
import Synchronization

/// A `Mutex` whose hand-offs ThreadSanitizer can see.
///
/// On Linux, `Synchronization.Mutex` takes and releases an uncontended lock with an atomic
/// compare-and-swap inlined into the caller, which ThreadSanitizer sees; a contended lock goes
/// through `_lockSlow`/`_unlockSlow` in the Swift runtime, which is not instrumented and lets
/// the kernel hand the lock over (`FUTEX_LOCK_PI`/`FUTEX_UNLOCK_PI`). ThreadSanitizer then
/// sees no order between the last holder's accesses and the new holder's, and reports a
/// race on the protected value whenever two threads contended for it: the event loop's
/// remote-work queue, under load, did. This type is that same `Mutex` and adds one
/// acquire/release annotation per critical section on an address of its own, so the order
/// becomes visible. Accesses outside the lock are still checked and reported.
///
/// Outside ThreadSanitizer builds the annotations are empty C functions: two calls per
/// critical section and one byte allocated per mutex.
struct AnnotatedMutex<Value: ~Copyable>: ~Copyable {
    private let mutex: Mutex<Value>
    /// The synchronization object the annotations name; never read or written.
    private let token = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

    init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
    }

    deinit {
        token.deallocate()
    }

    /// `Mutex.withLock`: runs `body` with exclusive access to the value.
    @inline(__always)
    borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            // Before the first access to `value` and after the last one: the Swift access
            // checks record an access to `value` itself where the closure touches it.
            torus_tsan_acquire(token)
            defer { torus_tsan_release(token) }
            return try body(&value)
        }
    }
}

// Sendable as `Mutex` is: the value is only reached under the lock, and `token` is never
// dereferenced (its address only names a ThreadSanitizer synchronization object).
extension AnnotatedMutex: @unchecked Sendable where Value: ~Copyable {}
