import CURing

/// Someone that stopped receiving because the loop ran out of receive buffers.
protocol ReceiveBufferWaiter: AnyObject {
    /// A buffer came back. Returns whether the waiter used the chance (re-armed its receive);
    /// false if it no longer needs buffers (it was closed meanwhile).
    func receiveBuffersAvailable() -> Bool
}

extension EventLoop {
    /// Where receive buffer `id` starts. Loop thread only.
    func receiveBufferAddress(_ id: UInt16) -> UnsafeMutableRawPointer {
        receiveBuffers.address(of: id)
    }

    /// Gives receive buffer `id` back to the kernel, and lets one receiver that ran out of
    /// buffers try again. Loop thread only.
    func recycleReceiveBuffer(_ id: UInt16) {
        receiveBuffers.recycle(id)
        while let waiter = receiveBufferWaiters.popFirst() {
            if waiter.receiveBuffersAvailable() { break }
        }
    }

    /// Registers `waiter` to hear when a receive buffer comes back. Loop thread only.
    func waitForReceiveBuffers(_ waiter: any ReceiveBufferWaiter) {
        receiveBufferWaiters.append(waiter)
    }

    /// Arms a multishot receive on `fd` that takes buffers from this loop's ring; each
    /// completion carries one buffer (its id in the flags) and goes to `handler`.
    /// Returns nil when the loop is stopping.
    func startReceiving(_ fd: CInt, handledBy handler: any CompletionHandler) -> OperationID? {
        let group = receiveBuffers.group
        return submit(handledBy: handler) { sqe, _ in
            io_uring_prep_recv_multishot(sqe, fd, nil, 0, 0)
            torus_sqe_select_buffer(sqe, group)
        }
    }
}

extension Completion {
    /// The provided buffer this completion filled, if any.
    var bufferID: UInt16? {
        flags & UInt32(IORING_CQE_F_BUFFER) != 0 ? UInt16(truncatingIfNeeded: flags >> IORING_CQE_BUFFER_SHIFT) : nil
    }
}
