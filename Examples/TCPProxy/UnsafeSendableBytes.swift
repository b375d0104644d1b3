import Torus

/// Received bytes lent to another connection's write.
///
/// `@unchecked Sendable`: the pointer goes to an actor that is, in this proxy, on the same
/// event loop (so on the same thread), and the lender awaits the write, keeping the receive
/// buffer alive and unchanged until the write has returned.
struct UnsafeSendableBytes: @unchecked Sendable {
    let buffer: UnsafeRawBufferPointer

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
    }
}

extension Connection {
    /// Writes lent bytes (see ``UnsafeSendableBytes``).
    func write(_ bytes: UnsafeSendableBytes) async throws {
        try await write(bytes.buffer)
    }
}
