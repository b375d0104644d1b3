#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`): cheap to read and to compare, which the
/// poll loop does for every connection on every turn.
enum Clock {
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    static func milliseconds(_ value: Int) -> Int64 { Int64(value) * 1_000_000 }
    static func seconds(_ value: Double) -> Int64 { Int64(value * 1e9) }
}
