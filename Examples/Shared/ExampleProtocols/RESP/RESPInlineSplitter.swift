/// Splits an inline command line into arguments the way `redis-cli` and Redis do
/// (`sdssplitargs`): words separated by blanks; "double quotes" with `\n`, `\r`, `\t`, `\\`,
/// `\"` and `\xHH` escapes; 'single quotes' with `\'`. A closing quote must be followed by a
/// blank or the end of the line.
enum RESPInlineSplitter {
    /// The arguments, or nil for unbalanced quotes.
    static func split(_ line: Slice<UnsafeRawBufferPointer>) -> [[UInt8]]? {
        var arguments: [[UInt8]] = []
        var index = line.startIndex
        while true {
            while index < line.endIndex, isBlank(line[index]) { index += 1 }
            guard index < line.endIndex else { return arguments }
            let quote = line[index]
            if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
                guard let (argument, end) = quoted(line, from: index + 1, quote: quote) else { return nil }
                arguments.append(argument)
                index = end
            } else {
                let start = index
                while index < line.endIndex, !isBlank(line[index]) { index += 1 }
                arguments.append(Array(line[start..<index]))
            }
        }
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
    }

    /// A quoted argument starting after its opening quote; returns it and the index after the
    /// closing quote.
    private static func quoted(_ line: Slice<UnsafeRawBufferPointer>, from start: Int, quote: UInt8) -> ([UInt8], Int)? {
        var argument: [UInt8] = []
        var index = start
        while index < line.endIndex {
            let byte = line[index]
            if byte == quote {
                let after = index + 1
                guard after == line.endIndex || isBlank(line[after]) else { return nil }
                return (argument, after)
            }
            if byte == UInt8(ascii: "\\"), index + 1 < line.endIndex {
                let escaped = line[index + 1]
                if quote == UInt8(ascii: "'") {
                    if escaped == UInt8(ascii: "'") {
                        argument.append(escaped)
                        index += 2
                        continue
                    }
                } else if escaped == UInt8(ascii: "x"), index + 3 < line.endIndex,
                          let high = HTTPSyntax.hexValue(line[index + 2]), let low = HTTPSyntax.hexValue(line[index + 3]) {
                    argument.append(UInt8(high * 16 + low))
                    index += 4
                    continue
                } else {
                    switch escaped {
                    case UInt8(ascii: "n"): argument.append(UInt8(ascii: "\n"))
                    case UInt8(ascii: "r"): argument.append(UInt8(ascii: "\r"))
                    case UInt8(ascii: "t"): argument.append(UInt8(ascii: "\t"))
                    case UInt8(ascii: "b"): argument.append(0x08)
                    case UInt8(ascii: "a"): argument.append(0x07)
                    default: argument.append(escaped)
                    }
                    index += 2
                    continue
                }
            }
            argument.append(byte)
            index += 1
        }
        return nil
    }
}
