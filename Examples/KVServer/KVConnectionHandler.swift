import ExampleProtocols
import Torus

/// Serves one RESP connection: every command that arrived together is run in one call to
/// the store and answered with one write.
enum KVConnectionHandler {
    /// Runs isolated to the stream (a connection, or a TLS stream over one), on its loop,
    /// until the client closes, sends `QUIT` or breaks the protocol beyond repair.
    static func serve(_ connection: isolated some ByteStream, store: KVStore, maxBulkLength: Int) async {
        let reader = BufferedReader(connection)
        var decoder = RESPDecoder(maxBulkLength: maxBulkLength)
        do {
            while let batch = try await reader.readFrame(using: &decoder) {
                guard !batch.isEmpty else { continue }
                let (replies, close) = await store.execute(batch)
                try await connection.write(replies)
                if close { break }
            }
        } catch {
            // A reset, a command over the decoder's limit, or a failed write ends this
            // connection only.
        }
        await connection.close()
    }
}
