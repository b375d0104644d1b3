import ExampleProtocols
import Torus

/// Serves one RESP connection: every command that arrived in one read is run in one call to
/// the store and answered with one write.
enum KVConnectionHandler {
    /// Runs isolated to the connection, on its loop, until the client closes, sends `QUIT`
    /// or breaks the protocol beyond repair.
    static func serve(_ connection: isolated Connection, store: KVStore, maxBulkLength: Int) async {
        var parser = RESPParser(maxBulkLength: maxBulkLength)
        var batch: [KVRequest] = []
        do {
            while let bytes = try await connection.receive() {
                bytes.withUnsafeBytes { parser.append($0) }
                _ = consume bytes  // Give the receive buffer back before running the commands.
                parsing: while true {
                    do {
                        guard let command = try parser.next() else { break parsing }
                        batch.append(.command(command))
                    } catch {
                        batch.append(.protocolError(error))
                        if error.isFatal { break parsing }
                    }
                }
                guard !batch.isEmpty else { continue }
                let (replies, close) = await store.execute(batch)
                // The commands are slices of the parser's storage: drop them before the next
                // append, which would otherwise copy that storage.
                batch.removeAll(keepingCapacity: true)
                try await connection.write(replies)
                if close { break }
            }
        } catch {
            // A reset or a failed write ends this connection only.
        }
        await connection.close()
    }
}
