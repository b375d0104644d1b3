@testable import Torus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Waiting for events between tasks, and on a child process's output, without timers: the
// limits and hostile-peer tests hold many tasks at a point until the test has seen something.

/// A one-way gate: tasks wait at it until it opens, and pass at once after that. A cancelled
/// task stops waiting (so that a test's time limit can end a test stuck at a gate).
final class Gate: Sendable {
    private let waiters = CancellableWaiters<Void, Void>()
    private let state = AnnotatedMutex(false)

    /// Lets every waiting task through, and every later one.
    func open() {
        state.withLock { $0 = true }
        waiters.resumeAll(where: { _ in true }, returning: ())
    }

    /// Whether the gate is open: a stop flag for a loop that looks at it now and then.
    var isOpen: Bool { state.withLock { $0 } }

    /// Returns once the gate is open, or the task is cancelled.
    func wait() async {
        await waiters.wait(tag: (), orReturn: ()) { self.state.withLock { $0 } ? () : nil }
    }
}

/// A counter that tasks can wait on until it reaches a value.
final class Tally: Sendable {
    private let waiters = CancellableWaiters<Int, Void>()
    private let count = AnnotatedMutex(0)

    var value: Int { count.withLock { $0 } }

    /// Adds one; returns the new count.
    @discardableResult
    func increment() -> Int {
        let now = count.withLock { count in
            count += 1
            return count
        }
        waiters.resumeAll(where: { $0 <= now }, returning: ())
        return now
    }

    /// Returns once the count is at least `target`, or the task is cancelled.
    func wait(untilAtLeast target: Int) async {
        await waiters.wait(tag: target, orReturn: ()) { self.value >= target ? () : nil }
    }
}

/// Tasks waiting for something, each with a tag saying what; a cancelled task stops waiting
/// and gets the value given for that case.
final class CancellableWaiters<Tag: Sendable, Value: Sendable>: Sendable {
    private struct Waiter {
        let id: Int
        let tag: Tag
        let continuation: CheckedContinuation<Value, Never>
    }
    private struct State {
        var nextID = 0
        var waiters: [Waiter] = []
    }
    private let state = AnnotatedMutex(State())

    /// Waits until ``resumeAll(where:returning:)`` picks `tag`, unless `ready` already has a
    /// value (checked under the same lock as the registration, so nothing is missed), or the
    /// task is cancelled (then `cancelled` is returned).
    func wait(tag: Tag, orReturn cancelled: Value, ready: @Sendable () -> Value?) async -> Value {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
                let immediate: Value? = state.withLock { state in
                    if let value = ready() { return value }
                    if Task.isCancelled { return cancelled }
                    state.waiters.append(Waiter(id: id, tag: tag, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(returning: cancelled)
        }
    }

    /// Resumes the waiters whose tag satisfies `picked` with `value`.
    func resumeAll(where picked: (Tag) -> Bool, returning value: Value) {
        let chosen = state.withLock { state in
            let chosen = state.waiters.filter { picked($0.tag) }
            state.waiters.removeAll { picked($0.tag) }
            return chosen
        }
        for waiter in chosen { waiter.continuation.resume(returning: value) }
    }
}

/// Everything a ``ChildProcess`` printed, read on a plain thread for as long as the child
/// runs (so that a chatty child never blocks on a full pipe), with waits for a piece of text.
final class OutputWatcher: Sendable {
    private struct State {
        var text = ""
        var hasEnded = false
    }
    private let state = AnnotatedMutex(State())
    private let waiters = CancellableWaiters<String, Bool>()
    private let reading = AnnotatedMutex<Task<Void, Never>?>(nil)

    /// Starts reading `child`'s standard output and error until both end (the child exited,
    /// or was killed). Call ``finish()`` before reaping the child.
    init(_ child: ChildProcess) {
        let task = Task {
            await onPOSIXThread {
                // The predicate is shown all the output so far after each read; it never
                // holds, so reading goes on until both streams end.
                _ = child.read(until: { text in self.update(text); return false }, timeout: .seconds(600))
                self.end()
            }
        }
        reading.withLock { $0 = task }
    }

    /// Everything read so far (both streams, in the order read).
    var text: String { state.withLock { $0.text } }

    /// How many times `needle` occurs in the output so far.
    func occurrences(of needle: String) -> Int {
        text.split(separator: needle, omittingEmptySubsequences: false).count - 1
    }

    /// Returns true once the output contains `needle`; false if the output ended without it,
    /// or the task was cancelled.
    func wait(for needle: String) async -> Bool {
        await waiters.wait(tag: needle, orReturn: false) {
            self.state.withLock { state in
                if state.text.contains(needle) { return true }
                return state.hasEnded ? false : nil
            }
        }
    }

    /// Waits until the child's output has ended (it exited or was killed).
    func finish() async {
        await reading.withLock { $0 }?.value
    }

    private func update(_ text: String) {
        state.withLock { $0.text = text }
        waiters.resumeAll(where: { text.contains($0) }, returning: true)
    }

    private func end() {
        state.withLock { $0.hasEnded = true }
        waiters.resumeAll(where: { _ in true }, returning: false)
    }
}

// MARK: - Another process's descriptors

enum ProcessDescriptors {
    /// What each open descriptor of process `pid` refers to (`socket:[…]`, `pipe:[…]`, …).
    static func targets(of pid: pid_t) -> [String] {
        let directoryPath = "/proc/\(pid)/fd"
        guard let directory = opendir(directoryPath) else { return [] }
        defer { closedir(directory) }
        var targets: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard CInt(name) != nil else { continue }
            var buffer = [CChar](repeating: 0, count: 256)
            let count = readlink(directoryPath + "/" + name, &buffer, buffer.count - 1)
            targets.append(count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?")
        }
        return targets
    }

    /// How many of process `pid`'s descriptors are sockets.
    static func socketCount(of pid: pid_t) -> Int {
        targets(of: pid).filter { $0.hasPrefix("socket:") }.count
    }

    private static func readText(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The soft limit on open descriptors of process `pid`, from `/proc/PID/limits`.
    static func softLimit(of pid: pid_t) -> Int? {
        // "Max open files            256                  256                  files"
        let line = readText("/proc/\(pid)/limits").split(separator: "\n").first { $0.hasPrefix("Max open files") }
        return line.flatMap { $0.dropFirst("Max open files".count).split(separator: " ").first.flatMap { Int($0) } }
    }
}

/// Raises this process's soft limit on open descriptors to at least `minimum` (as far as the
/// hard limit allows); returns the soft limit now in force.
func raiseDescriptorLimit(toAtLeast minimum: Int) -> Int {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    if limit.rlim_cur < rlim_t(minimum) {
        limit.rlim_cur = min(rlim_t(minimum), limit.rlim_max)
        _ = setrlimit(resource, &limit)
        _ = getrlimit(resource, &limit)
    }
    return Int(clamping: limit.rlim_cur)
}
