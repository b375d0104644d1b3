import FuzzSupport

/// Input: a first byte whose low bit picks the property checked, then that property's
/// choices: hostile bytes into a server session (HostileClient.swift), or a client and a
/// server session whose records are cut, delayed and tampered with (SessionPair.swift).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(fuzzInput(start, count))
    guard let first = input.first else { return 0 }
    if first & 1 == 0 {
        hostileClient(input[1...])
    } else {
        sessionPair(Choices(input[1...]))
    }
    return 0
}

/// Called by libFuzzer once, before the first input: the contexts and their throwaway
/// certificates are made here, not in the first run.
@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    _ = FuzzContexts.shared
    return 0
}

// The entry point SwiftPM expects of an executable; libFuzzer's own `main` usually wins.
@_cdecl("FuzzTLSRecords_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzOne)
}
