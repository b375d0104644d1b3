/// Parsing of the numbers and names in command arguments, on bytes.
enum KVSyntax {
    /// A decimal integer with an optional `-`, as Redis accepts it (no `+`, no spaces, no
    /// leading zeros check); nil if it is not one or does not fit in 64 bits.
    static func integer(_ bytes: ArraySlice<UInt8>) -> Int? {
        var digits = bytes
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = negative
                ? times10.subtractingReportingOverflow(Int(digit - UInt8(ascii: "0")))
                : times10.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// `bytes` in upper case, as a string (command and option names are short: no
    /// allocation for names of up to 15 bytes).
    static func upperName(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.lazy.map { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") ? $0 - 32 : $0 }, as: UTF8.self)
    }

    /// The decimal digits of `value`.
    static func decimal(_ value: Int) -> [UInt8] {
        Array(String(value).utf8)
    }
}
