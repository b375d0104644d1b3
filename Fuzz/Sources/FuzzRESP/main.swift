import ExampleProtocols
import FuzzSupport
import Torus

/// Input: 8 piece sizes, then bytes a Redis client sends. The decoder frames the same
/// commands whatever the pieces, and fails only with a RESPParseError.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(fuzzInput(start, count))
    guard input.count >= 8 else { return 0 }
    let body = input[8...]
    func commands(_ pieces: [[UInt8]]) -> String {
        var decoder = RESPDecoder(maxBulkLength: 4096)
        do {
            let batches = try drive(&decoder, pieces)
            return "\(batches.flatMap { batch in batch.map(describe) })"
        } catch is RESPParseError {
            return "error"
        } catch {
            preconditionFailure("not a RESPParseError: \(error)")
        }
    }
    let cut = commands(pieces(of: body, sizes: input[0..<8]))
    let whole = commands([Array(body)])
    if cut != "error" && whole != "error" {
        precondition(cut == whole, "pieces gave \(cut), the whole input \(whole)")
    }
    return 0
}

/// A request as its arguments' bytes, or its error: the same command cut differently reads
/// the same.
func describe(_ request: RESPRequest) -> String {
    switch request {
    case .command(let command): "\(command.map { Array($0) })"
    case .protocolError(let error): "error \(error)"
    }
}

// The entry point SwiftPM expects of an executable; libFuzzer's own `main` usually wins.
@_cdecl("FuzzRESP_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzOne)
}
