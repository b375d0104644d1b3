/// The loop's table of operations in flight, indexed by `OperationID` in O(1).
///
/// A slab of slots reused through a free list. Each slot carries a generation that changes
/// whenever it is freed, so a late cancel request or completion naming a reused slot is
/// recognised and ignored. Accessed on the loop thread only.
struct CompletionTable {
    enum State {
        case free(nextFree: Int)
        /// Allocated; the operation is being prepared. `cancelRequested` records a
        /// cancellation that arrived before the request reached the ring.
        case reserved(cancelRequested: Bool)
        /// A task waits for the completion. `inKernel` is false for waits that the loop
        /// completes itself (a listener's accept queue, for example).
        case awaiting(UnsafeContinuation<Completion, Never>, inKernel: Bool, cancelRequested: Bool)
        /// A loop-side consumer receives every completion (multishot requests, timers).
        case handler(any CompletionHandler, cancelRequested: Bool)
    }

    private struct Slot {
        var generation: UInt32
        var state: State
    }

    private var slots: ContiguousArray<Slot> = []
    private var freeHead = -1
    /// Operations not yet completed.
    private(set) var liveCount = 0

    init(initialCapacity: Int) {
        slots.reserveCapacity(initialCapacity)
    }

    mutating func reserve() -> OperationID {
        liveCount += 1
        if freeHead >= 0 {
            let index = freeHead
            guard case .free(let next) = slots[index].state else { preconditionFailure("free list corrupt") }
            freeHead = next
            slots[index].state = .reserved(cancelRequested: false)
            return OperationID(slot: UInt32(index), generation: slots[index].generation)
        }
        slots.append(Slot(generation: 0, state: .reserved(cancelRequested: false)))
        return OperationID(slot: UInt32(slots.count - 1), generation: 0)
    }

    /// The state of `id`, or nil when it has completed (its slot is free or reused).
    func state(of id: OperationID) -> State? {
        guard id.slot < slots.count, slots[id.slot].generation == id.generation else { return nil }
        if case .free = slots[id.slot].state { return nil }
        return slots[id.slot].state
    }

    mutating func setState(_ state: State, for id: OperationID) {
        precondition(self.state(of: id) != nil, "\(id) is not live")
        slots[id.slot].state = state
    }

    mutating func release(_ id: OperationID) {
        precondition(state(of: id) != nil, "\(id) released twice")
        slots[id.slot].generation = (slots[id.slot].generation &+ 1) & OperationID.generationMask
        slots[id.slot].state = .free(nextFree: freeHead)
        freeHead = id.slot
        liveCount -= 1
    }

    /// Every live operation, for shutdown.
    var liveOperations: [OperationID] {
        slots.indices.compactMap { index in
            if case .free = slots[index].state { return nil }
            return OperationID(slot: UInt32(index), generation: slots[index].generation)
        }
    }
}
