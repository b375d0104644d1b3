@_spi(Fuzzing) import TorusTLS

/// One direction of an in-memory connection: the ciphertext one side sent and the other has
/// not received yet, handed out in receives whose sizes the input chooses (one byte, to the
/// end of a record, into the next record's header, several records, …). It may flip one byte
/// of what passes (chosen by its offset in the direction's stream), and it can end.
final class Wire {
    /// The pending bytes are `bytes[start...]`.
    private var bytes: [UInt8] = []
    private var start = 0
    /// Bytes accepted from the sender and handed to the receiver, from the beginning.
    private(set) var sentCount = 0
    private(set) var deliveredCount = 0
    /// The size of the last receive: the most a session may hold unconsumed.
    private(set) var lastDelivery = 0
    /// The connection has ended in this direction: end of stream once the pending bytes are
    /// delivered, and what is sent later is lost.
    private(set) var isClosed = false

    /// Where each record starts (offsets from the beginning, in order), and the first of them
    /// past `deliveredCount`: for cuts at and next to record boundaries.
    private var recordStarts: [Int] = []
    private var nextRecord = 0
    /// The header being read across sends, and how much of the current record's body is left.
    private var header: [UInt8] = []
    private var bodyLeft = 0

    private let flipOffset: Int?
    private let flipMask: UInt8
    /// Set once the byte at `flipOffset` went by: whether it was in a record's body (not its
    /// 5-byte header).
    private(set) var flippedInBody: Bool?

    init(flipOffset: Int? = nil, mask: UInt8 = 0) {
        self.flipOffset = flipOffset
        self.flipMask = mask == 0 ? 0x80 : mask
    }

    var pendingCount: Int { bytes.count - start }

    /// Whether the flipped byte reached the receiver.
    var flipDelivered: Bool {
        guard flippedInBody != nil, let flipOffset else { return false }
        return deliveredCount > flipOffset
    }

    /// Takes what a side sent; false (and the bytes lost) once the wire is closed.
    @discardableResult
    func send(_ sent: [UInt8]) -> Bool {
        guard !isClosed else { return false }
        guard !sent.isEmpty else { return true }
        var sent = sent
        findRecords(in: sent)
        if let flipOffset, flipOffset >= sentCount, flipOffset < sentCount + sent.count {
            sent[flipOffset - sentCount] ^= flipMask
        }
        bytes += sent
        sentCount += sent.count
        return true
    }

    /// The next receive, as a connection would hand it to the session.
    func receive(_ choices: Choices) -> TLSMemorySession.Arrival {
        guard pendingCount > 0 else { return isClosed ? .endOfStream : .nothing }
        let count = min(pendingCount, max(1, cutSize(choices.byte())))
        let chunk = Array(bytes[start..<(start + count)])
        start += count
        deliveredCount += count
        lastDelivery = count
        if start > 1 << 16, start * 2 > bytes.count {
            bytes.removeFirst(start)
            start = 0
        }
        return .bytes(chunk)
    }

    /// Ends the connection in this direction: after the pending bytes, or at once, losing them.
    func close(droppingPending: Bool) {
        isClosed = true
        if droppingPending {
            bytes = []
            start = 0
        }
    }

    /// How many bytes the next receive may hand out, for the input's `choice`.
    private func cutSize(_ choice: UInt8) -> Int {
        let x = Int(choice >> 3)   // 0...31
        switch choice & 7 {
        case 0: return pendingCount
        case 1: return 1
        case 2: return recordEnd(skipping: 0) - deliveredCount
        case 3: return recordEnd(skipping: 0) - deliveredCount + 1 + x % 4   // into the next header
        case 4: return recordEnd(skipping: 1 + x % 6) - deliveredCount       // several records
        case 5: return 1 + x
        case 6: return 1 + x * 509
        default: return 1 + x * 1024
        }
    }

    /// Where the record under way ends, or the one `skipping` records after it (the end of
    /// what was sent, when fewer were).
    private func recordEnd(skipping: Int) -> Int {
        while nextRecord < recordStarts.count, recordStarts[nextRecord] <= deliveredCount { nextRecord += 1 }
        let index = nextRecord + skipping
        return index < recordStarts.count ? recordStarts[index] : sentCount
    }

    /// Follows the record headers through `sent` (which starts at `sentCount`), before any
    /// flip: notes where records start and whether the byte to flip is in a body.
    private func findRecords(in sent: [UInt8]) {
        var position = 0
        while position < sent.count {
            let offset = sentCount + position
            if bodyLeft > 0 {
                let count = min(bodyLeft, sent.count - position)
                if let flipOffset, flipOffset >= offset, flipOffset < offset + count { flippedInBody = true }
                bodyLeft -= count
                position += count
                continue
            }
            if header.isEmpty { recordStarts.append(offset) }
            if offset == flipOffset { flippedInBody = false }
            header.append(sent[position])
            position += 1
            if header.count == 5 {
                bodyLeft = Int(header[3]) << 8 | Int(header[4])
                header = []
            }
        }
    }
}
