import FuzzSupport
import Torus

/// Any text either fails to parse with a TorusError or parses to an address whose text
/// parses back to the same address.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let text = String(decoding: fuzzInput(start, count), as: UTF8.self)
    do {
        let address = try SocketAddress(text)
        let again = try SocketAddress("\(address)")
        precondition(again == address, "\(text) parsed to \(address), which parses to \(again)")
    } catch {
        // A parse error is the expected answer to most inputs.
    }
    if let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) {
        _ = try? SocketAddress(host: String(text[..<colon]), port: port)
    }
    return 0
}

// The entry point SwiftPM expects of an executable; libFuzzer's own `main` usually wins.
@_cdecl("FuzzSocketAddress_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzOne)
}
