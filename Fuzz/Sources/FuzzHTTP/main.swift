import ExampleProtocols
import FuzzSupport
import Torus

/// Input: 8 piece sizes, then bytes a client sends. The decoder frames the same requests
/// whatever the pieces (compared with the whole input at once), and fails only with an
/// HTTPParseError.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(fuzzInput(start, count))
    guard input.count >= 8 else { return 0 }
    let body = input[8...]
    func heads(_ pieces: [[UInt8]]) -> String {
        var decoder = HTTPRequestDecoder(maxHeaderBytes: 2048)
        do {
            return "\(try drive(&decoder, pieces).flatMap { $0 }.map { "\($0.method) \($0.target) \($0.keepAlive)" })"
        } catch is HTTPParseError {
            return "error"
        } catch {
            preconditionFailure("not an HTTPParseError: \(error)")
        }
    }
    let cut = heads(pieces(of: body, sizes: input[0..<8]))
    let whole = heads([Array(body)])
    // A request cut at any byte parses as the same request; an error may come earlier or
    // later in the pieces, so only the framed requests before any error are compared.
    if cut != "error" && whole != "error" {
        precondition(cut == whole, "pieces gave \(cut), the whole input \(whole)")
    }
    return 0
}

// The entry point SwiftPM expects of an executable; libFuzzer's own `main` usually wins.
@_cdecl("FuzzHTTP_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzOne)
}
