/// The bytes one connection sends: a pseudo-random stream determined by the run's seed and the
/// connection's serial number, in which byte `i` is computed from `i` alone (counter mode:
/// byte `i` is byte `i % 8` of `mix(key + i / 8)`). So the writer can regenerate any stretch
/// after a short send, and the reader checks what comes back without storing what went out.
struct BytePattern {
    let key: UInt64

    init(seed: UInt64, serial: Int) {
        key = SplitMix64.derive(seed, stream: 2, index: serial)
    }

    @inline(__always)
    private func word(_ index: Int) -> UInt64 {
        SplitMix64.mix(key &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15)
    }

    @inline(__always)
    func byte(at offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: word(offset >> 3) >> (UInt64(offset & 7) &* 8))
    }

    /// Fills `buffer` with the stream's bytes from `offset` on.
    func fill(_ buffer: UnsafeMutableRawBufferPointer, from offset: Int) {
        let count = buffer.count
        var i = 0
        while i < count, (offset + i) & 7 != 0 {
            buffer[i] = byte(at: offset + i)
            i += 1
        }
        while count - i >= 8 {
            buffer.storeBytes(of: word((offset + i) >> 3).littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            buffer[i] = byte(at: offset + i)
            i += 1
        }
    }

    /// The index in `bytes` of the first byte that differs from the stream at `offset`, or
    /// nil when all of them match.
    func firstMismatch(in bytes: UnsafeRawBufferPointer, from offset: Int) -> Int? {
        let count = bytes.count
        var i = 0
        while i < count, (offset + i) & 7 != 0 {
            if bytes[i] != byte(at: offset + i) { return i }
            i += 1
        }
        while count - i >= 8 {
            let got = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            if got != word((offset + i) >> 3) {
                for j in i..<(i + 8) where bytes[j] != byte(at: offset + j) { return j }
            }
            i += 8
        }
        while i < count {
            if bytes[i] != byte(at: offset + i) { return i }
            i += 1
        }
        return nil
    }
}
