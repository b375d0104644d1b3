/// Someone that stopped receiving because the loop ran out of receive buffers.
protocol ReceiveBufferWaiter: AnyObject {
    /// A buffer came back. Returns whether the waiter used the chance (re-armed its receive);
    /// false if it no longer needs buffers (it was closed meanwhile).
    func receiveBuffersAvailable() -> Bool
}

extension EventLoop {
    /// Where receive buffer `id` starts. Loop thread only.
    func receiveBufferAddress(_ id: UInt16) -> UnsafeMutableRawPointer {
        io.receiveBufferAddress(id)
    }

    /// Gives receive buffer `id` back to the kernel, and lets one receiver that ran out of
    /// buffers try again. Loop thread only.
    func recycleReceiveBuffer(_ id: UInt16) {
        io.recycleReceiveBuffer(id)
        receiveBuffersLent -= 1
        while let waiter = receiveBufferWaiters.popFirst() {
            if waiter.receiveBuffersAvailable() { break }
        }
    }

    /// Whether some receive buffer is free now. An `ENOBUFS` can be stale: the engine found no
    /// buffer, and some came back before its completion was handled; waiting for one more to
    /// come back would then wait for ever if the buffers' holders wait for bytes.
    var hasFreeReceiveBuffers: Bool { receiveBuffersLent < configuration.receiveBufferCount }

    /// Registers `waiter` to hear when a receive buffer comes back. Loop thread only.
    func waitForReceiveBuffers(_ waiter: any ReceiveBufferWaiter) {
        receiveBufferWaiters.append(waiter)
    }

    /// Arms a multishot receive on `fd` that takes this loop's receive buffers; each
    /// completion carries one buffer (``Completion/bufferID``) and goes to `handler`.
    /// Returns nil when the loop is stopping.
    func startReceiving(_ fd: CInt, handledBy handler: any CompletionHandler) -> OperationID? {
        submit(.receiveIntoBuffers(fd), handledBy: handler)
    }
}
