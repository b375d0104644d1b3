import CURing

/// The outcome of one operation as the kernel reported it: a result (negative errno on
/// failure) and flags.
struct Completion: Sendable {
    /// The operation's result: a byte count, a descriptor, 0, or `-errno`.
    var result: Int32
    /// `IORING_CQE_F_*` bits.
    var flags: UInt32

    init(result: Int32, flags: UInt32 = 0) {
        self.result = result
        self.flags = flags
    }

    /// A multishot request posts more completions after this one.
    var hasMore: Bool { flags & UInt32(IORING_CQE_F_MORE) != 0 }

    /// The errno this completion failed with, or nil when it succeeded.
    var errno: Int32? { result < 0 ? -result : nil }

    static let cancelled = Completion(result: -ECANCELED)
    static let loopShutDown = Completion(result: -ESHUTDOWN)
}

/// Something on the loop that consumes completions for an operation it submitted without a
/// task waiting on it: a multishot request, or an internal timer. Called on the loop thread.
protocol CompletionHandler: AnyObject {
    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop)
}

/// Names one operation: the slot it occupies in the loop's completion table and that slot's
/// generation, packed into the 64-bit `user_data` the kernel hands back.
struct OperationID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64

    init(slot: UInt32, generation: UInt32) {
        rawValue = UInt64(generation & Self.generationMask) << 32 | UInt64(slot)
    }

    init(rawValue: UInt64) { self.rawValue = rawValue }

    var slot: Int { Int(truncatingIfNeeded: rawValue & 0xFFFF_FFFF) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }

    /// Generations use 31 bits; `user_data` values with the top bit set are the loop's own
    /// bookkeeping (wake-ups, linked timeouts, cancel requests) and name no slot.
    static let generationMask: UInt32 = 0x7FFF_FFFF

    var description: String { "op#\(slot).\(generation)" }
}

/// `user_data` values for requests whose completions carry no news for anyone.
enum InternalTag {
    static let bit: UInt64 = 1 << 63
    /// The eventfd read that wakes the loop from other threads.
    static let wake: UInt64 = bit | 1
    /// Completions to drop: linked timeouts, cancel requests, detached closes.
    static let ignored: UInt64 = bit | 2
    /// A wake-up posted by another loop's ring (`IORING_OP_MSG_RING`).
    static let message: UInt64 = bit | 3
}
