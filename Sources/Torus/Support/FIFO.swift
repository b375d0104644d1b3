/// A growable first-in-first-out queue over a power-of-two ring buffer.
///
/// The event loop keeps its ready jobs and the listener its accepted descriptors in one of
/// these: appending and popping never shift elements and, once the buffer has grown to the
/// working-set size, never allocate. The buffer is allocated on the first append: every
/// connection has several of these queues, and an idle one should cost no memory for them.
struct FIFO<Element> {
    private var storage: [Element?] = []
    private var head = 0
    private(set) var count = 0
    /// The capacity of the first buffer, a power of two.
    private let initialCapacity: Int32

    init(initialCapacity: Int = 16) {
        var capacity = 1
        while capacity < max(initialCapacity, 1) { capacity <<= 1 }
        self.initialCapacity = Int32(capacity)
    }

    var isEmpty: Bool { count == 0 }

    var first: Element? { count == 0 ? nil : storage[head] }

    /// The element `offset` places behind the oldest. `offset` must be less than `count`.
    subscript(offset offset: Int) -> Element {
        precondition(offset >= 0 && offset < count, "FIFO offset out of range")
        return storage[(head + offset) & (storage.count - 1)]!
    }

    /// Changes the oldest element in place. The queue must not be empty.
    mutating func updateFirst(_ body: (inout Element) -> Void) {
        precondition(count > 0, "updateFirst on an empty FIFO")
        body(&storage[head]!)
    }

    mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) & (storage.count - 1)] = element
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) & (storage.count - 1)
        count -= 1
        return element
    }

    /// Removes and returns every element, oldest first.
    mutating func removeAll() -> [Element] {
        var all: [Element] = []
        all.reserveCapacity(count)
        while let element = popFirst() { all.append(element) }
        return all
    }

    private mutating func grow() {
        var bigger: [Element?] = Array(repeating: nil, count: storage.isEmpty ? Int(initialCapacity) : storage.count * 2)
        for index in 0..<count {
            bigger[index] = storage[(head + index) & (storage.count - 1)]
        }
        storage = bigger
        head = 0
    }
}
