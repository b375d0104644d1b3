import Torus

/// Drives a `FrameDecoder` the way a `BufferedReader` does, over byte arrays instead of a
/// socket: the bytes held so far, each piece appended in turn, `decode` called on everything
/// held until it needs more, and the reader's limit (`maxFrameLength`) enforced.
enum ReaderSimulation {
    /// The reader's failure for holding too much with no frame.
    struct FrameTooLong: Error {}

    /// Feeds `pieces`, handing each frame to `body`; records the most bytes held at once.
    static func run<Decoder: FrameDecoder>(
        _ decoder: inout Decoder, _ pieces: [[UInt8]], maxHeld: inout Int, _ body: (Decoder.Frame) -> Void
    ) throws {
        var held: [UInt8] = []
        for piece in pieces {
            held += piece
            maxHeld = max(maxHeld, held.count)
            while !held.isEmpty {
                guard let (frame, consumed) = try held.withUnsafeBytes({ try decoder.decode($0) }) else {
                    if held.count > decoder.maxFrameLength + 16 { throw FrameTooLong() }
                    break
                }
                precondition(consumed > 0 && consumed <= held.count, "a decoder consumed \(consumed) of \(held.count)")
                held.removeFirst(consumed)
                body(frame)
            }
        }
    }
}
