#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one operation as an engine reports it: a result (negative errno on
/// failure), what kind of completion it is, and the receive buffer it filled, if any.
///
/// Both engines speak this one form (the io_uring engine translates its CQE flags into it), so
/// that the code above them reads completions the same way whichever engine runs.
struct Completion: Sendable {
    /// The operation's result: a byte count, a descriptor, 0, or `-errno`.
    var result: Int32
    /// What else this completion says.
    var flags: CompletionFlags
    /// The receive buffer the operation filled, when ``flags`` contains ``CompletionFlags/buffer``.
    var bufferIndex: UInt16

    init(result: Int32, flags: CompletionFlags = [], bufferIndex: UInt16 = 0) {
        self.result = result
        self.flags = flags
        self.bufferIndex = bufferIndex
    }

    /// A multishot operation posts more completions after this one.
    var hasMore: Bool { flags.contains(.more) }

    /// The receive buffer this completion filled, if any.
    var bufferID: UInt16? { flags.contains(.buffer) ? bufferIndex : nil }

    /// The errno this completion failed with, or nil when it succeeded.
    var errno: Int32? { result < 0 ? -result : nil }

    static let cancelled = Completion(result: -ECANCELED)
    static let loopShutDown = Completion(result: -ESHUTDOWN)
}

/// What a completion says besides its result.
struct CompletionFlags: OptionSet, Sendable {
    let rawValue: UInt8

    /// A multishot operation stays armed: more completions follow. Its absence on a multishot
    /// operation's completion means the operation has ended (it must be armed again).
    static let more = CompletionFlags(rawValue: 1 << 0)
    /// The operation took one of the loop's receive buffers (``Completion/bufferIndex``).
    static let buffer = CompletionFlags(rawValue: 1 << 1)
}

/// Something on the loop that consumes completions for an operation it submitted without a
/// task waiting on it: a multishot request, or an internal timer. Called on the loop thread.
protocol CompletionHandler: AnyObject {
    func handle(_ completion: Completion, for operation: OperationID, on loop: EventLoop)
}

/// Names one operation: the slot it occupies in the loop's completion table and that slot's
/// generation, packed into 64 bits (io_uring hands them back as `user_data`).
struct OperationID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64

    init(slot: UInt32, generation: UInt32) {
        rawValue = UInt64(generation & Self.generationMask) << 32 | UInt64(slot)
    }

    init(rawValue: UInt64) { self.rawValue = rawValue }

    var slot: Int { Int(truncatingIfNeeded: rawValue & 0xFFFF_FFFF) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }

    /// Generations use 31 bits: values with the top bit set are an engine's own bookkeeping
    /// (wake-ups, linked timeouts, cancel requests) and name no slot.
    static let generationMask: UInt32 = 0x7FFF_FFFF

    var description: String { "op#\(slot).\(generation)" }
}
