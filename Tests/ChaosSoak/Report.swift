/// Number formatting for the progress lines and the summary.
enum Report {
    static func bytes(_ count: Int) -> String {
        let value = Double(count)
        if value >= 1e9 { return fixed(value / 1e9, 2) + " GB" }
        if value >= 1e6 { return fixed(value / 1e6, 1) + " MB" }
        if value >= 1e3 { return fixed(value / 1e3, 1) + " kB" }
        return "\(count) B"
    }

    static func mebibytes(_ count: Int) -> String {
        fixed(Double(count) / 1_048_576, 1) + " MiB"
    }

    static func seconds(_ value: Double) -> String {
        fixed(value, 1) + "s"
    }

    /// `value` with `digits` digits after the point (no Foundation here).
    static func fixed(_ value: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard digits > 0 else { return sign + String(whole) }
        let digitsText = String(fraction)
        return sign + String(whole) + "." + String(repeating: "0", count: digits - digitsText.count) + digitsText
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    static func padRight(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
