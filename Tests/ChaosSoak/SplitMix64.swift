#if canImport(Glibc)
import Glibc
#endif

/// Seeded pseudo-random numbers (SplitMix64): fast, and the same sequence for the same seed
/// everywhere, so that a run's choices can be replayed from the seed it printed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's output function: a bijection that scatters nearby inputs far apart.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for the thing numbered `index` of kind `stream`, derived from the run's seed.
    static func derive(_ seed: UInt64, stream: UInt64, index: Int) -> UInt64 {
        mix(seed ^ mix(stream &* 0x1000_0000_01B3 &+ UInt64(truncatingIfNeeded: index)))
    }

    /// A number in `range`, log-uniformly distributed: each power of two is as likely as any
    /// other, so 1-byte and 64 KiB messages both turn up often.
    mutating func logUniform(in range: ClosedRange<Int>) -> Int {
        guard range.lowerBound < range.upperBound else { return range.lowerBound }
        let low = log(Double(max(range.lowerBound, 1)))
        let high = log(Double(range.upperBound) + 1)
        let value = Int(exp(Double.random(in: low..<high, using: &self)))
        return min(max(value, range.lowerBound), range.upperBound)
    }

    /// True with probability `percent`/100.
    mutating func chance(_ percent: Int) -> Bool {
        percent > 0 && Int.random(in: 0..<100, using: &self) < percent
    }
}
