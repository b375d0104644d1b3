import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension SocketAddress {
    /// Resolves `host` (a name or an IP literal) to the addresses to try for `port`, in the
    /// order the system prefers.
    ///
    /// `getaddrinfo` blocks, so it runs on a thread of its own: never on an event loop.
    /// Cancelling the task ends the wait at once with `CancellationError`.
    ///
    /// - Throws: ``TorusError`` of kind ``TorusError/Kind/hostNotFound`` when the name does not
    ///   resolve.
    public static func resolve(host: String, port: UInt16) async throws -> [SocketAddress] {
        if let literal = try? SocketAddress(host: host, port: port) { return [literal] }
        let lookup = Lookup(host: host, port: port)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                lookup.start(continuation)
            }
        } onCancel: {
            lookup.cancel()
        }
    }
}

/// One `getaddrinfo` call on its own detached thread, resumed exactly once: with the answer,
/// or with `CancellationError` if the task is cancelled first.
private final class Lookup: Sendable {
    let host: String
    let port: UInt16
    private let waiter = AnnotatedMutex<Waiter>(.notStarted)

    private enum Waiter {
        case notStarted
        case waiting(UnsafeContinuation<[SocketAddress], any Error>)
        case cancelledEarly
        case finished
    }

    init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    func start(_ continuation: UnsafeContinuation<[SocketAddress], any Error>) {
        let cancelled = waiter.withLock { state -> Bool in
            if case .cancelledEarly = state { state = .finished; return true }
            state = .waiting(continuation)
            return false
        }
        if cancelled {
            continuation.resume(throwing: CancellationError())
            return
        }
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, lookupThreadMain, Unmanaged.passRetained(self).toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            finish(.failure(TorusError(.system, operation: .resolve, errno: rc, detail: "could not start a resolver thread")))
        }
    }

    func cancel() {
        let continuation = waiter.withLock { state -> UnsafeContinuation<[SocketAddress], any Error>? in
            switch state {
            case .notStarted: state = .cancelledEarly; return nil
            case .waiting(let continuation): state = .finished; return continuation
            case .cancelledEarly, .finished: return nil
            }
        }
        continuation?.resume(throwing: CancellationError())
    }

    func finish(_ result: Result<[SocketAddress], TorusError>) {
        let continuation = waiter.withLock { state -> UnsafeContinuation<[SocketAddress], any Error>? in
            guard case .waiting(let continuation) = state else { return nil }
            state = .finished
            return continuation
        }
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    /// Runs on the lookup thread.
    func run() {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = SocketKind.stream.type
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let message = String(cString: gai_strerror(rc))
            finish(.failure(TorusError(.hostNotFound, operation: .resolve, detail: "\(host): \(message)")))
            return
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry = list
        while let current = entry {
            if let raw = current.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { destination in
                    destination.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: Int(current.pointee.ai_addrlen)))
                }
                if let address = SocketAddress(storage, length: current.pointee.ai_addrlen), !addresses.contains(address) {
                    addresses.append(address)
                }
            }
            entry = current.pointee.ai_next
        }
        if addresses.isEmpty {
            finish(.failure(TorusError(.hostNotFound, operation: .resolve, detail: "\(host): no addresses")))
        } else {
            finish(.success(addresses))
        }
    }
}

private func lookupThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<Lookup>.fromOpaque(argument!).takeRetainedValue().run()
    return nil
}
