#if canImport(Glibc)
import Glibc
#endif

/// Bytes received and not yet parsed: one growable array with a read index, so consuming
/// bytes costs nothing and appending reuses the array's capacity.
///
/// The parsed prefix is dropped (moved out with one `memmove`) when the next bytes arrive,
/// once it is the whole array or at least half of a large one, so memory stays bounded by
/// what is unparsed plus one receive.
public struct ByteAccumulator: Sendable {
    /// The array; bytes before ``readIndex`` are already parsed.
    public private(set) var storage: [UInt8] = []
    /// The first byte not parsed yet.
    public private(set) var readIndex = 0

    /// An empty accumulator.
    public init() {}

    /// The number of bytes not parsed yet.
    public var readableCount: Int { storage.count - readIndex }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        storage.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        compact()
        storage.append(contentsOf: bytes)
    }

    /// Marks `count` more bytes as parsed.
    public mutating func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableCount, "consumed more bytes than there are")
        readIndex += count
    }

    /// The index of the first `byte` in `from..<storage.count`, or nil.
    public func firstIndex(of byte: UInt8, from start: Int) -> Int? {
        guard start < storage.count else { return nil }
        return storage.withUnsafeBytes { raw in
            guard let found = memchr(raw.baseAddress! + start, Int32(byte), raw.count - start) else { return nil }
            return raw.baseAddress!.distance(to: UnsafeRawPointer(found))
        }
    }

    private mutating func compact() {
        if readIndex == storage.count {
            storage.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex >= 4096 && readIndex * 2 >= storage.count {
            storage.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}
