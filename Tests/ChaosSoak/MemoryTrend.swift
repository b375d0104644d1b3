/// Whether a server's resident memory stayed flat under steady churn.
///
/// The criterion: the median RSS of the samples in the last 20% of the load (the end level)
/// may exceed the median RSS of the samples in the 20% right after warm-up (20–40% of the
/// load: the level once warmed up) by at most `tolerance`% of the latter, and never by less
/// than a floor of `floor` MiB (defaults 10% and 4 MiB).
///
/// Why not the first 20%: that is warm-up. The provided-buffer ring's pages, malloc's arenas
/// and the runtime's task allocator are touched for the first time as the load ramps up, so
/// RSS climbs there without leaking anything.
///
/// Why medians of windows, not single samples or maxima: under churn, RSS follows how many
/// receive buffers, tasks and queued bytes are live at the moment of the sample. It rises
/// with bursts of slow readers and falls back when malloc trims, so single samples and
/// high-water marks swing by several MiB with no leak at all (tcp-proxy: 37 → 43.7 → 39.6 MiB
/// in one 60 s run). A leak instead moves the whole distribution up in proportion to the
/// connections served, and the median of a window follows it while ignoring short peaks.
///
/// Why 10% with a 4 MiB floor: well above the drift of the window medians seen in runs
/// without a leak (under 2 MiB), yet a 60 s run serves ~90,000 connections, ~55,000 of them
/// between the two windows' centres, so a leak of ~75 bytes per connection or more fails
/// it, and a 600 s run catches ~8 bytes per connection. Every per-connection object (an actor,
/// a task, a buffer) is larger than that. The slope (least squares over the samples after
/// warm-up) and the growth per connection are reported too, to size a leak.
struct MemoryTrend {
    let reference: Int
    let referenceWindow: ClosedRange<Double>
    let end: Int
    let endWindow: ClosedRange<Double>
    let allowed: Int
    let slopeBytesPerSecond: Double

    var growth: Int { end - reference }
    var isFlat: Bool { growth <= allowed }

    /// Samples each window needs for its median to mean something.
    static let minimumSamples = 3

    /// Nil when the run was too short to have enough samples in both windows.
    init?(samples: [SoakRunner.Sample], loadSeconds: Double, warmUpFraction: Double, tolerancePercent: Double, floorMiB: Double) {
        let load = samples.filter { $0.underLoad && $0.residentBytes != nil }
        let warmUpEnd = loadSeconds * warmUpFraction
        let settled = load.filter { $0.seconds >= warmUpEnd && $0.seconds <= 2 * warmUpEnd }
        let final = load.filter { $0.seconds >= loadSeconds - warmUpEnd }
        guard settled.count >= Self.minimumSamples, final.count >= Self.minimumSamples,
              settled.last!.seconds < final.first!.seconds
        else { return nil }
        reference = Self.median(settled.map { $0.residentBytes! })
        end = Self.median(final.map { $0.residentBytes! })
        referenceWindow = settled.first!.seconds...settled.last!.seconds
        endWindow = final.first!.seconds...final.last!.seconds
        allowed = max(Int(Double(reference) * tolerancePercent / 100), Int(floorMiB * 1_048_576))

        let after = load.filter { $0.seconds >= warmUpEnd }
        let n = Double(after.count)
        let meanT = after.map(\.seconds).reduce(0, +) / n
        let meanR = after.map { Double($0.residentBytes!) }.reduce(0, +) / n
        let covariance = after.map { ($0.seconds - meanT) * (Double($0.residentBytes!) - meanR) }.reduce(0, +)
        let variance = after.map { ($0.seconds - meanT) * ($0.seconds - meanT) }.reduce(0, +)
        slopeBytesPerSecond = variance > 0 ? covariance / variance : 0
    }

    private static func median(_ values: [Int]) -> Int {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
