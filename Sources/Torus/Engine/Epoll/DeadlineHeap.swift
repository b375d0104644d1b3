/// The deadlines of the epoll engine's pending operations (timers and timeouts), earliest
/// first: a binary min-heap that knows where each operation's entry sits, so that the
/// deadline of an operation that completed first is removed in O(log n) instead of lingering.
///
/// Operations are named by their completion-table slot; each has at most one deadline.
struct DeadlineHeap {
    private struct Entry {
        var deadline: UInt64
        var slot: Int
    }

    private var entries: [Entry] = []
    /// For each slot, its entry's index in `entries`, or -1.
    private var positions: [Int] = []

    var isEmpty: Bool { entries.isEmpty }

    /// The earliest deadline, in nanoseconds of `CLOCK_MONOTONIC`.
    var earliest: UInt64? { entries.first?.deadline }

    /// Whether `slot` has a deadline.
    func contains(_ slot: Int) -> Bool { slot < positions.count && positions[slot] >= 0 }

    mutating func insert(_ slot: Int, deadline: UInt64) {
        precondition(!contains(slot), "slot \(slot) already has a deadline")
        if slot >= positions.count {
            positions.append(contentsOf: repeatElement(-1, count: slot + 1 - positions.count))
        }
        entries.append(Entry(deadline: deadline, slot: slot))
        positions[slot] = entries.count - 1
        siftUp(entries.count - 1)
    }

    /// Removes `slot`'s deadline, if it has one.
    mutating func remove(_ slot: Int) {
        guard contains(slot) else { return }
        let index = positions[slot]
        positions[slot] = -1
        let last = entries.removeLast()
        guard index < entries.count else { return }
        entries[index] = last
        positions[last.slot] = index
        siftDown(index)
        siftUp(index)
    }

    /// Removes and returns the slot of the earliest deadline if it is at or before `now`.
    mutating func popExpired(now: UInt64) -> Int? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        remove(first.slot)
        return first.slot
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        while index > 0 {
            let parent = (index - 1) / 2
            guard entries[index].deadline < entries[parent].deadline else { return }
            swapEntries(index, parent)
            index = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        while true {
            let left = 2 * index + 1
            guard left < entries.count else { return }
            var smallest = left
            if left + 1 < entries.count, entries[left + 1].deadline < entries[left].deadline { smallest = left + 1 }
            guard entries[smallest].deadline < entries[index].deadline else { return }
            swapEntries(index, smallest)
            index = smallest
        }
    }

    private mutating func swapEntries(_ a: Int, _ b: Int) {
        entries.swapAt(a, b)
        positions[entries[a].slot] = a
        positions[entries[b].slot] = b
    }
}
