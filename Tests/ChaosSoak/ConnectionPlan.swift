/// What one client connection will do, drawn at random from the run's seed and the
/// connection's serial number alone: the same seed gives connection N the same plan (messages,
/// ending, pauses) in every run, whatever the timing.
struct ConnectionPlan {
    /// How the client ends the connection.
    enum Ending: String, CaseIterable {
        /// Waits until every byte came back, then closes.
        case close
        /// Shuts down its write side after the last message and reads until end of stream,
        /// which must come after every byte sent.
        case halfClose = "half-close"
        /// Resets the connection (`SO_LINGER` 0, then `close`) at `abortOffset`.
        case reset
        /// Abandons the connection at `abortOffset` with a plain `close`, as a cancelled task
        /// does: the kernel sends FIN, or RST when echoed bytes were still unread.
        case cancel
    }

    /// Where a reset or cancel happens: after writing, or after reading, `abortOffset` bytes.
    enum Side: String {
        case write, read
    }

    /// A pause of the writer at a stream offset (a stalled writer).
    struct Stall {
        let offset: Int
        let milliseconds: Int
    }

    let serial: Int
    let ending: Ending
    let abortSide: Side
    /// For `reset` and `cancel`: the stream offset at which the client gives up — strictly
    /// inside a message where possible, so it happens mid-write or mid-read.
    let abortOffset: Int
    let messageSizes: [Int]
    /// Pipelined: the next message goes out without waiting for the previous one's echo.
    let pipelined: Bool
    /// Reads in small chunks with pauses in between.
    let slowReader: Bool
    /// Pauses of the writer, in stream order (empty unless a stalled writer).
    let stalls: [Stall]
    let totalBytes: Int
    /// Over TLS: the version offered and the TLS-level misbehaviour; nil on plaintext.
    let tls: TLSPlan?

    /// The plan of connection `serial`. `honest`: a well-behaved connection whatever the draw
    /// (ping-pong, no pauses, closed once everything came back; over TLS a full handshake and
    /// close_notify), as the check that the server still serves after the run uses.
    init(serial: Int, seed: UInt64, options: SoakOptions, honest: Bool = false) {
        var random = SplitMix64(seed: SplitMix64.derive(seed, stream: 1, index: serial))
        self.serial = serial
        let tls = options.tlsCA == nil ? nil
            : TLSPlan(serial: serial, seed: seed, mix: honest ? options.tlsMix.honestOnly : options.tlsMix)
        self.tls = tls
        let roll = Int.random(in: 0..<100, using: &random)
        let mix = options.mix
        let drawn: Ending =
            roll < mix.reset ? .reset
            : roll < mix.reset + mix.cancel ? .cancel
            : roll < mix.reset + mix.cancel + mix.halfClose ? .halfClose
            : .close
        // A connection that closes without close_notify, or renegotiates, gets that far.
        let tlsEndsItself = tls.map { $0.misbehaviour == .noCloseNotify || $0.misbehaviour == .renegotiate } ?? false
        ending = honest || tlsEndsItself ? .close : drawn
        slowReader = random.chance(mix.slowReader) && !honest
        let stalledWriter = random.chance(mix.stalledWriter) && !honest
        pipelined = Bool.random(using: &random) && !honest

        var sizes: [Int] = []
        var total = 0
        for _ in 0..<Int.random(in: 1...options.maxMessages, using: &random) {
            let size = random.logUniform(in: options.minSize...options.maxSize)
            // A slow reader takes ~2 s per 100 KiB; cap it so slow connections do not end up
            // holding every slot.
            if slowReader, !sizes.isEmpty, total + size > options.slowReaderBytes { break }
            sizes.append(size)
            total += size
        }
        messageSizes = sizes
        totalBytes = total

        // Abort inside a message (mid-write: some of it sent; mid-read: some of its echo read).
        abortSide = Bool.random(using: &random) ? .write : .read
        let message = Int.random(in: 0..<sizes.count, using: &random)
        let start = sizes[..<message].reduce(0, +)
        let size = sizes[message]
        switch abortSide {
        case .write: abortOffset = size > 1 ? start + Int.random(in: 1..<size, using: &random) : start
        case .read: abortOffset = size > 1 ? start + Int.random(in: 1..<size, using: &random) : start + 1
        }

        var stalls: [Stall] = []
        if stalledWriter {
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                stalls.append(Stall(offset: Int.random(in: 0..<total, using: &random),
                                    milliseconds: Int.random(in: options.stallMilliseconds, using: &random)))
            }
            stalls.sort { $0.offset < $1.offset }
        }
        self.stalls = stalls
    }

    var summary: String {
        var parts = ["serial \(serial)"]
        if let tls { parts.append(tls.summary) }
        parts.append(ending.rawValue)
        if ending == .reset || ending == .cancel { parts.append("at \(abortSide.rawValue) offset \(abortOffset)") }
        parts.append("\(messageSizes.count) message(s) \(messageSizes.prefix(6).map(String.init).joined(separator: ","))\(messageSizes.count > 6 ? ",..." : "") = \(totalBytes) B")
        parts.append(pipelined ? "pipelined" : "ping-pong")
        if slowReader { parts.append("slow reader") }
        if !stalls.isEmpty { parts.append("stalls " + stalls.map { "\($0.milliseconds)ms@\($0.offset)" }.joined(separator: ",")) }
        return parts.joined(separator: ", ")
    }
}
