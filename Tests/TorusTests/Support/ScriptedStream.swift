import Torus

/// A ``ByteStream`` that hands out the chunks it was given, one per receive, then the end
/// (or an error): framing code sees exactly the receive boundaries a test chose. It records
/// where each chunk it handed out lies, so a test can tell a frame lent in place from a copy.
actor ScriptedStream: ByteStream {
    private var chunks: [[UInt8]]
    private let endError: (any Error)?
    private(set) var written: [UInt8] = []
    private(set) var receives = 0
    /// The address ranges of the chunks handed out.
    private(set) var handedOut: [Range<UInt>] = []
    private var isClosed = false

    init(_ chunks: [[UInt8]], endingWith error: (any Error)? = nil) {
        self.chunks = chunks.reversed()
        self.endError = error
    }

    /// `bytes` cut at the given offsets (sorted, within `bytes`).
    init(_ bytes: [UInt8], cutAt cuts: [Int]) {
        var pieces: [[UInt8]] = []
        var start = 0
        for cut in cuts + [bytes.count] where cut > start {
            pieces.append(Array(bytes[start..<cut]))
            start = cut
        }
        self.init(pieces)
    }

    func receive(timeout: Duration?) async throws -> ReceivedBytes? {
        receives += 1
        guard let next = chunks.popLast() else {
            if let endError { throw endError }
            return nil
        }
        let bytes = ReceivedBytes(next)
        bytes.withUnsafeBytes { raw in
            let base = UInt(bitPattern: raw.baseAddress)
            handedOut.append(base..<(base + UInt(raw.count)))
        }
        return bytes
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration?) async throws -> Int {
        guard !buffer.isEmpty else { return 0 }
        guard var next = chunks.popLast() else {
            if let endError { throw endError }
            return 0
        }
        let count = min(next.count, buffer.count)
        buffer.copyBytes(from: next[..<count])
        next.removeFirst(count)
        if !next.isEmpty { chunks.append(next) }
        return count
    }

    func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration?) async throws {
        written += buffer
    }

    func send(_ bytes: consuming ReceivedBytes) async throws {
        written += bytes.array
    }

    func flush() async throws {}
    func shutdown(_ direction: ShutdownDirection) async throws {}
    func close() async { isClosed = true }

    /// Whether `pointer` lies inside a chunk this stream handed out.
    func handedOut(_ pointer: UInt) -> Bool {
        handedOut.contains { $0.contains(pointer) }
    }
}
