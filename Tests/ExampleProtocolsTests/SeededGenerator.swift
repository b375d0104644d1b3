/// SplitMix64: a small deterministic generator, so that a failing random case can be run
/// again from its seed (printed in the failure).
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Ways to cut a byte stream into the pieces a socket might deliver.
enum Splits {
    /// Every way to cut `bytes` in two.
    static func allTwoWay(_ bytes: [UInt8]) -> [[[UInt8]]] {
        (0...bytes.count).map { [Array(bytes[..<$0]), Array(bytes[$0...])] }
    }

    /// `bytes` in random pieces of 1...`maxPiece` bytes.
    static func random(_ bytes: [UInt8], maxPiece: Int, using generator: inout SeededGenerator) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var index = 0
        while index < bytes.count {
            let size = Int.random(in: 1...maxPiece, using: &generator)
            pieces.append(Array(bytes[index..<min(bytes.count, index + size)]))
            index += size
        }
        return pieces
    }

    /// Random bytes, biased toward the characters protocol grammars care about so that
    /// garbage gets past the first check now and then.
    static func garbage(count: Int, using generator: inout SeededGenerator) -> [UInt8] {
        let interesting = Array("\r\n\r\n:; *$-0123456789GET / HTTP/1.1\tabcxyzContent-Length: chunked\"'\\".utf8)
        return (0..<count).map { _ in
            Bool.random(using: &generator)
                ? interesting.randomElement(using: &generator)!
                : UInt8.random(in: 0...255, using: &generator)
        }
    }

    /// `bytes` with a few bytes replaced, inserted or removed at random.
    static func mutated(_ bytes: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        var result = bytes
        for _ in 0..<Int.random(in: 1...4, using: &generator) where !result.isEmpty {
            let index = Int.random(in: 0..<result.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: result[index] = UInt8.random(in: 0...255, using: &generator)
            case 1: result.insert(Array("\r\n: $*-9".utf8).randomElement(using: &generator)!, at: index)
            default: result.remove(at: index)
            }
        }
        return result
    }
}
