/// Whether a server's resident memory stayed flat under steady churn.
///
/// The criterion: the median RSS of the samples in the last 20% of the load (the end level)
/// may exceed the median RSS of the samples in the 20% right after warm-up (20-40% of the
/// load: the level once warmed up) by at most `tolerance`% of the latter, and never by less
/// than a floor of `floor` MiB (defaults 10% and 16 MiB).
///
/// Why not the first 20%: that is warm-up. The pages of the provided-buffer ring, malloc's
/// arenas and the runtime's task allocator are touched for the first time as the load ramps
/// up, so RSS climbs there without leaking anything.
///
/// Why medians of windows, not single samples or maxima: under churn, RSS follows how many
/// receive buffers, tasks and queued bytes are live at the moment of the sample, so single
/// samples and high-water marks swing by several MiB with no leak (tcp-proxy: 37 -> 43.7 ->
/// 39.6 MiB in one 60 s run). A leak moves the whole distribution up in proportion to the
/// connections served; the median of a window follows that and ignores short peaks.
///
/// Why a 16 MiB floor: RSS also grows in steps that are not leaks. glibc gives a thread that
/// finds every malloc arena locked a new arena (up to 8 per CPU), and each one keeps its
/// working set. In a 600 s run of tcp-proxy (1.18 million connections) the arenas went from 3
/// to 5 (a 4th at ~60 s, a 5th at ~180 s; 2-5 MiB each) while the buffer ring stayed at 16 MiB.
/// RSS rose from 39 to 46 MiB over the first ~200 s and then stayed flat for 400 s (trend
/// +2 KiB/s, 1 B per connection). A 60 s run ends while that is still happening (+8.6 MiB
/// between the windows in one run), so the floor covers about three such steps. What that
/// costs: between the two windows' centres a 60 s run serves ~55,000 connections, so it fails
/// leaks of ~300 bytes per connection or more. That is any object kept per connection (an
/// actor, a task, a buffer: 1 KB and up). A 600 s run (~470,000 connections) fails ~35 bytes
/// per connection. The slope (least squares over the samples after warm-up) and the growth
/// per connection are reported too, to size smaller drifts.
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
