extension IPv6Address {
    /// The IPv4-mapped IPv6 address of `address` (`::ffff:a.b.c.d`), how an IPv6 socket
    /// reaches an IPv4 peer.
    init(mapping address: IPv4Address) {
        // Network byte order: ten zero bytes, 0xffff, then the four IPv4 bytes (rawValue is
        // already in network order in memory).
        var bytes = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &bytes) { raw in
            raw[10] = 0xFF
            raw[11] = 0xFF
            raw.storeBytes(of: address.rawValue, toByteOffset: 12, as: UInt32.self)
        }
        self = .any
        self.bytes = bytes
    }

    /// Whether this is a multicast address (`ff00::/8`).
    var isMulticast: Bool {
        withUnsafeBytes(of: bytes) { $0[0] == 0xFF }
    }
}

extension IPv4Address {
    /// Whether this is a multicast address (`224.0.0.0/4`).
    var isMulticast: Bool {
        withUnsafeBytes(of: rawValue) { $0[0] & 0xF0 == 0xE0 }
    }
}
