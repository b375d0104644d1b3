import CURing
#if canImport(Glibc)
import Glibc
#endif

/// One io_uring instance: its submission and completion queues, owned by one loop thread.
///
/// A thin, typed layer over liburing. Creating it negotiates the best set-up flags the
/// kernel accepts; dropping it tears the ring down.
struct Ring: ~Copyable {
    private let ring: UnsafeMutablePointer<io_uring>
    private var isClosed = false
    /// What the kernel granted: set-up flags, features and supported opcodes.
    let capabilities: IOUringCapabilities

    /// Creates a ring with `entries` submission entries (the completion queue gets four
    /// times as many). Must run on the thread that will use it: with `SINGLE_ISSUER` the
    /// kernel ties the ring to its creator.
    init(entries: UInt32) throws(TorusError) {
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        let setup = torus_ring_setup(entries, ring)
        guard setup.error == 0 else {
            ring.deallocate()
            throw IOUringCapabilities.setupError(errno: setup.error)
        }
        // A registered ring fd saves a file-table lookup on every io_uring_enter (5.18+).
        _ = io_uring_register_ring_fd(ring)
        self.ring = ring
        self.capabilities = IOUringCapabilities(ring: ring, setupFlags: setup.flags, features: setup.features)
    }

    deinit {
        if !isClosed { io_uring_queue_exit(ring) }
        ring.deallocate()
    }

    /// The ring's file descriptor, which other rings name to post a completion to it
    /// (`IORING_OP_MSG_RING`).
    var descriptor: CInt { ring.pointee.ring_fd }

    /// Tears the ring down; the kernel cancels whatever is still in flight. The loop calls
    /// this when its thread exits, long before the loop object itself goes away.
    mutating func close() {
        guard !isClosed else { return }
        isClosed = true
        io_uring_queue_exit(ring)
    }

    /// Maps and registers a provided-buffer ring (Linux 5.19+); the caller fills it and unmaps
    /// it (`entries * sizeof(io_uring_buf)` bytes) after the ring is closed.
    func registerBufferRing(entries: UInt32, group: UInt16) throws(TorusError) -> UnsafeMutablePointer<io_uring_buf_ring> {
        var error: Int32 = 0
        guard let buffers = torus_buf_ring_create(ring, entries, group, &error) else {
            throw TorusError(.ioUringUnavailable, operation: .ringSetup, errno: error,
                             detail: "could not register a provided-buffer ring; Torus needs Linux 6.1 or later")
        }
        return buffers
    }

    /// Free submission entries.
    var spaceLeft: Int { Int(io_uring_sq_space_left(ring)) }

    /// Prepared entries the kernel has not consumed yet.
    var pendingSubmissions: Int { Int(io_uring_sq_ready(ring)) }

    /// The next submission entry, zeroed. Callers make sure there is space first.
    func nextSubmission() -> UnsafeMutablePointer<io_uring_sqe> {
        guard let sqe = io_uring_get_sqe(ring) else {
            preconditionFailure("submission queue full: reserve space before preparing")
        }
        return sqe
    }

    /// Submits prepared entries and, if `waitFor` > 0, waits for that many completions.
    /// Returns the number submitted or `-errno`. EINTR is retried.
    func submit(waitingFor waitFor: UInt32) -> Int32 {
        while true {
            let rc = io_uring_submit_and_wait(ring, waitFor)
            if rc == -EINTR { continue }
            return rc
        }
    }

    /// Hands up to `buffer.count` ready completions to `body`, then marks them consumed.
    /// Returns how many there were.
    func reapCompletions(
        into buffer: UnsafeMutableBufferPointer<UnsafeMutablePointer<io_uring_cqe>?>,
        _ body: (io_uring_cqe) -> Void
    ) -> Int {
        let count = Int(io_uring_peek_batch_cqe(ring, buffer.baseAddress, UInt32(buffer.count)))
        for index in 0..<count {
            body(buffer[index]!.pointee)
        }
        io_uring_cq_advance(ring, UInt32(count))
        return count
    }
}
