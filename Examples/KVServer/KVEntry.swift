/// A stored value and when it expires.
struct KVEntry {
    var value: [UInt8]
    /// nil: never.
    var expiresAt: ContinuousClock.Instant?
}
