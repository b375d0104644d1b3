/// The signature of a fuzz target: one input, 0 when it was handled (a crash or a failed
/// check is the finding).
public typealias FuzzTarget = @convention(c) (UnsafeRawPointer?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ target: FuzzTarget
) -> CInt

/// Hands the process to libFuzzer's driver with `target` (from a target's `NAME_main`).
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ target: FuzzTarget) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, target)
}

/// The input as a buffer (libFuzzer passes a null pointer for an empty input).
public func fuzzInput(_ start: UnsafeRawPointer?, _ count: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count)
}

/// Cuts `bytes` into pieces whose sizes come from `sizes` (each 1 + the byte mod 64, in
/// turn), so that a fuzzer chooses where receives end.
public func pieces(of bytes: ArraySlice<UInt8>, sizes: ArraySlice<UInt8>) -> [[UInt8]] {
    var result: [[UInt8]] = []
    var start = bytes.startIndex
    var index = sizes.startIndex
    while start < bytes.endIndex {
        let size = sizes.isEmpty ? bytes.count : 1 + Int(sizes[index]) % 64
        let end = min(bytes.endIndex, start + size)
        result.append(Array(bytes[start..<end]))
        start = end
        if !sizes.isEmpty { index = index + 1 == sizes.endIndex ? sizes.startIndex : index + 1 }
    }
    return result
}
