/// How long the server took to close connections of one kind (from the TCP connection being
/// established to the end of stream or reset): count, fastest, slowest, mean.
struct CloseTimes {
    private(set) var count = 0
    private(set) var fastest = Double.infinity
    private(set) var slowest = 0.0
    private var total = 0.0

    mutating func add(_ seconds: Double) {
        count += 1
        fastest = min(fastest, seconds)
        slowest = max(slowest, seconds)
        total += seconds
    }

    var summary: String {
        count == 0 ? "none"
            : "\(count), closed after \(Report.fixed(fastest, 2))...\(Report.fixed(slowest, 2)) s (mean \(Report.fixed(total / Double(count), 2)) s)"
    }
}
