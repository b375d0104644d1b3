import Torus

extension Connection {
    /// Queues `line` for the client, unless the client is not keeping up: when the line
    /// would take what is queued past `limit` bytes (unless nothing is queued), or an
    /// earlier send failed (a reset, or a send the client did not take within the write
    /// timeout). Returns false then, and queues nothing. Never waits: the connection's
    /// high-water mark is `limit` (set in main.swift), so a send under it
    /// joins the queue at once.
    func send(_ line: [UInt8], unlessQueuedPast limit: Int) async -> Bool {
        guard isWritable, queuedBytes == 0 || queuedBytes + line.count <= limit else { return false }
        do { try await send(line) } catch { return false }
        return true
    }
}
