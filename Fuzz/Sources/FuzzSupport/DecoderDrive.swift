public import Torus

/// Drives `decoder` as a `BufferedReader` does, over `pieces` instead of a socket: each piece
/// appended to what is held, `decode` called until it needs more, the reader's limit enforced,
/// `decodeLast` at the end. Checks what a decoder promises: it consumes at least one byte and
/// no more than it was given. Returns the frames; throws what the decoder throws.
public func drive<Decoder: FrameDecoder>(_ decoder: inout Decoder, _ pieces: [[UInt8]]) throws -> [Decoder.Frame] {
    var held: [UInt8] = []
    var frames: [Decoder.Frame] = []
    func decodeHeld(atEnd: Bool) throws {
        while !held.isEmpty {
            var found = try held.withUnsafeBytes { try decoder.decode($0) }
            if found == nil, atEnd { found = try held.withUnsafeBytes { try decoder.decodeLast($0) } }
            guard let (frame, consumed) = found else {
                // The reader's own limit: past it, it gives up (frameTooLong).
                if held.count > decoder.maxFrameLength &+ 16 { held.removeAll() }
                return
            }
            precondition(consumed > 0 && consumed <= held.count, "\(Decoder.self) consumed \(consumed) of \(held.count)")
            held.removeFirst(consumed)
            frames.append(frame)
        }
    }
    for piece in pieces {
        held += piece
        try decodeHeld(atEnd: false)
    }
    try decodeHeld(atEnd: true)
    return frames
}
