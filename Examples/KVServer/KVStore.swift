import ExampleProtocols
import Torus

/// The key-value data, isolated to one event loop: the store is an actor whose executor is
/// that loop, so with one loop (the default) a connection handler, also on that loop, calls it
/// with no thread hop, and with several loops the others hop to it once per batch of
/// commands. Every command of a batch runs in one call, so a pipelined batch is atomic with
/// respect to other connections.
///
/// Expired keys are removed when touched (read, written, counted by `DBSIZE`); there is no
/// background expiry cycle, so a key that expires and is never touched again keeps its memory
/// until `DBSIZE`, `FLUSHDB` or a write to it.
actor KVStore {
    nonisolated let loop: EventLoop
    var entries: [ArraySlice<UInt8>: KVEntry] = [:]

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    init(on loop: EventLoop) {
        self.loop = loop
    }

    /// Runs a batch of parsed commands (and answers the parse errors among them) in order.
    ///
    /// - Returns: Every reply, encoded, and whether the connection should close after them
    ///   (`QUIT`, or a fatal protocol error).
    func execute(_ batch: RESPBatch) -> (replies: [UInt8], close: Bool) {
        var output = RESPEncoder()
        output.bytes.reserveCapacity(batch.count * 8)
        for request in batch {
            switch request {
            case .command(let command):
                if run(command, into: &output) { return (output.bytes, true) }
            case .protocolError(let error):
                output.error("ERR " + error.message)
                if error.isFatal { return (output.bytes, true) }
            }
        }
        return (output.bytes, false)
    }

    // MARK: Entries

    /// The entry for `key` unless it has expired (an expired one is removed).
    func live(_ key: ArraySlice<UInt8>, now: ContinuousClock.Instant? = nil) -> KVEntry? {
        guard let index = entries.index(forKey: key) else { return nil }
        let entry = entries.values[index]
        if let expiresAt = entry.expiresAt, expiresAt <= (now ?? .now) {
            entries.remove(at: index)
            return nil
        }
        return entry
    }

    /// Stores `entry` under `key`, copying the key only when it is new: the slice given
    /// points into the batch's storage, which the decoder reuses.
    func store(_ entry: KVEntry, at key: ArraySlice<UInt8>) {
        if let index = entries.index(forKey: key) {
            entries.values[index] = entry
        } else {
            entries[ArraySlice(Array(key))] = entry
        }
    }

    /// Removes expired entries; returns how many are left.
    func purgeExpired() -> Int {
        let now = ContinuousClock.now
        entries = entries.filter { $0.value.expiresAt.map { $0 > now } ?? true }
        return entries.count
    }
}
