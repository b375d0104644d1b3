import Testing
import Torus
#if canImport(Glibc)
import Glibc
#endif

/// A trait that records an issue when the process holds a different number of open file
/// descriptors after a suite (or test) than before it.
///
/// Apply it to every suite that opens sockets. It is only meaningful while nothing else in the
/// process opens or closes descriptors, which is why every suite is nested under the
/// serialized ``TorusTests`` root.
///
/// The shared event-loop group is started before the first count: its rings and eventfds live
/// for the rest of the process and are not a leak. So does the global executor's timer.
///
/// Before the final count the check makes one round trip through every shared loop's ring, so
/// that closes the loops already have queued (a dropped connection's or a listener's queued
/// descriptors) have been issued. If the counts still differ, it waits up to two seconds for
/// the numbers to settle, since those closes are asynchronous by design; a real leak never
/// settles, and the issue lists the descriptors that are new.
struct NoDescriptorLeaks: SuiteTrait, TestTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        let loops = (try? EventLoopGroup.shared)?.loops ?? []
        // The global executor's timer (a timerfd, made on first use of Task.sleep) also
        // lives for the rest of the process.
        try? await Task.sleep(for: .milliseconds(1))
        let before = OpenDescriptors.current()
        var failure: (any Error)?
        do { try await function() } catch { failure = error }

        for loop in loops { try? await loop.sleep(for: .zero) }
        var after = OpenDescriptors.current()
        let settleDeadline = ContinuousClock.now + .seconds(2)
        while after.count != before.count, ContinuousClock.now < settleDeadline {
            if let loop = loops.first {
                try? await loop.sleep(for: .milliseconds(20))
            } else {
                try? await Task.sleep(for: .milliseconds(20))
            }
            after = OpenDescriptors.current()
        }
        if after.count != before.count {
            let added = after.filter { before[$0.key] != $0.value }.sorted { $0.key < $1.key }
            let removed = before.filter { after[$0.key] != $0.value }.sorted { $0.key < $1.key }
            Issue.record("""
                open descriptors changed in \(test.name): \(before.count) before, \(after.count) after
                new or changed: \(added.map { "\($0.key) -> \($0.value)" })
                gone: \(removed.map { "\($0.key) -> \($0.value)" })
                """)
        }
        if let failure { throw failure }
    }
}

extension Trait where Self == NoDescriptorLeaks {
    /// Fails the suite or test if it leaves descriptors open (see ``NoDescriptorLeaks``).
    static var noDescriptorLeaks: Self { NoDescriptorLeaks() }
}

/// The process's open descriptors, read from `/proc/self/fd`.
enum OpenDescriptors {
    /// Every open descriptor and what it refers to (`socket:[1234]`, `anon_inode:[io_uring]`, …).
    /// The descriptor `opendir` itself uses is left out.
    static func current() -> [CInt: String] {
        guard let directory = opendir("/proc/self/fd") else { return [:] }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var result: [CInt: String] = [:]
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = CInt(name), fd != own else { continue }
            result[fd] = target(of: "/proc/self/fd/\(name)")
        }
        return result
    }

    private static func target(of path: String) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return "?" }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
