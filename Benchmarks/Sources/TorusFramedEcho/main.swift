// torus-framed-echo: the framed Torus echo server of the benchmarks (`run --framed`).
//
//   torus-framed-echo --framing line|length4 --reader zero-copy|copying [--batch chunk|frame]
//                     [--port 7000] [--host 127.0.0.1]
//
// One event loop (`EventLoopGroup(loopCount: 1)`), one listener, a `Server` that runs each
// connection's handler in a child task isolated to the connection (as `echo-server` does).
// Each handler cuts what it receives into frames with a `BufferedReader` and sends every frame
// back with its framing: a line with its '\n', a length-prefixed frame with its 4-byte
// big-endian length.
//
// - `--reader zero-copy`: `BufferedReader.forEachFrame` lends each frame where it lies (in the
//   receive buffer, or in the reader's own buffer for a frame that spans receives). The frames
//   are gathered, with their framing, into one buffer per connection that is reused, never
//   reallocated once grown (no array per frame), and written with
//   `write(UnsafeRawBufferPointer)`:
//   - `--batch chunk` (default): once per batch of frames the reader holds, i.e. when the frame
//     being handled is the last whole one the reader holds (what it holds after it is at most
//     a line ending), as `torus-echo --mode send` sends once per received buffer;
//   - `--batch frame`: once per frame.
// - `--reader copying`: the copying sequences, `for try await line in connection.lines()` or
//   `for try await frame in connection.frames(.lengthPrefixed(width: 4, ...))`, each frame
//   answered with `send(_:)` of a new array (queued, no wait for the kernel; the outbox gathers
//   queued sends into one `sendmsg`).
//
// Prints "listening on PORT" once ready. SIGINT/SIGTERM end it.
import Torus

#if canImport(Glibc)
import Glibc
#endif

enum FramingKind: String {
    case line
    case length4
}

enum Reader: String {
    case zeroCopy = "zero-copy"
    case copying
}

enum Batch: String {
    case chunk
    case frame
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Arguments {
    var framing = FramingKind.line
    var reader = Reader.zeroCopy
    var batch = Batch.chunk
    var host = "127.0.0.1"
    var port: UInt16 = 7000

    static let usage = "usage: torus-framed-echo --framing line|length4 --reader zero-copy|copying [--batch chunk|frame] [--port PORT] [--host ADDRESS]"

    init(_ arguments: [String]) throws(UsageError) {
        var remaining = arguments.makeIterator()
        while let flag = remaining.next() {
            guard let value = remaining.next() else { throw UsageError("\(flag) needs a value\n\(Self.usage)") }
            switch flag {
            case "--framing":
                guard let framing = FramingKind(rawValue: value) else { throw UsageError("unknown framing \(value)\n\(Self.usage)") }
                self.framing = framing
            case "--reader":
                guard let reader = Reader(rawValue: value) else { throw UsageError("unknown reader \(value)\n\(Self.usage)") }
                self.reader = reader
            case "--batch":
                guard let batch = Batch(rawValue: value) else { throw UsageError("unknown batch \(value)\n\(Self.usage)") }
                self.batch = batch
            case "--host": host = value
            case "--port":
                guard let port = UInt16(value) else { throw UsageError("--port must be 0...65535, not \(value)") }
                self.port = port
            default: throw UsageError("unknown option \(flag)\n\(Self.usage)")
            }
        }
    }
}

/// The longest frame accepted; the load generator's are at most its message size.
let maxFrameLength = 1 << 20

/// The frames of one connection waiting to be written, with their framing: one allocation per
/// connection, grown to the largest batch and then reused.
struct Outgoing: ~Copyable {
    private var memory: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        memory = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { memory.deallocate() }

    /// The bytes gathered; valid until the next append.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: memory, count: count) }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if capacity - count < bytes.count { grow(to: count + bytes.count) }
        (memory + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        memory.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func append(bigEndian length: UInt32) {
        if capacity - count < 4 { grow(to: count + 4) }
        memory.storeBytes(of: length.bigEndian, toByteOffset: count, as: UInt32.self)
        count += 4
    }

    mutating func removeAll() { count = 0 }

    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        bigger.copyMemory(from: memory, byteCount: count)
        memory.deallocate()
        memory = bigger
        capacity = newCapacity
    }
}

/// Echoes every frame with `forEachFrame`: no copy out of the reader, one copy into the
/// connection's outgoing buffer, one `write` per batch (or per frame).
func echoZeroCopy(_ connection: isolated Connection, framing kind: FramingKind, batch: Batch) async throws {
    let reader = BufferedReader(connection)
    var outgoing = Outgoing(capacity: 16 * 1024)
    let framing: Framing
    // The framing bytes around a frame, which the reader holds besides the frame itself:
    // a line's ending (1 or 2 bytes), a length prefix (4).
    let framingBytes: Int
    switch kind {
    case .line:
        framing = .line(maxLength: maxFrameLength)
        framingBytes = 2
    case .length4:
        framing = .lengthPrefixed(width: 4, byteOrder: .bigEndian, maxLength: maxFrameLength)
        framingBytes = 4
    }
    try await reader.forEachFrame(framing) { frame in
        switch kind {
        case .line:
            outgoing.append(frame)
            outgoing.append(byte: 0x0A)
        case .length4:
            outgoing.append(bigEndian: UInt32(frame.count))
            outgoing.append(frame)
        }
        // The reader still counts this frame: when nothing but it (and its framing) is left,
        // the next frame needs another receive, so this batch goes out now.
        if batch == .frame || reader.bufferedCount <= frame.count + framingBytes || outgoing.count >= 256 * 1024 {
            try await connection.write(outgoing.bytes)
            outgoing.removeAll()
        }
    }
}

/// Echoes every frame through the copying sequences: one array (or string) per frame, and one
/// new array per answer, queued with `send`.
func echoCopying(_ connection: isolated Connection, framing kind: FramingKind) async throws {
    switch kind {
    case .line:
        for try await line in connection.lines(maxLength: maxFrameLength) {
            try await connection.send(line + "\n")
        }
    case .length4:
        for try await frame in connection.frames(.lengthPrefixed(width: 4, byteOrder: .bigEndian, maxLength: maxFrameLength)) {
            var message: [UInt8] = []
            message.reserveCapacity(4 + frame.count)
            withUnsafeBytes(of: UInt32(frame.count).bigEndian) { message.append(contentsOf: $0) }
            message.append(contentsOf: frame)
            try await connection.send(message)
        }
    }
}

/// The idle-connection benchmark holds many connections: allow as many descriptors as the
/// hard limit does.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

func main() async -> Int32 {
    let arguments: Arguments
    do {
        arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    } catch {
        print(error)
        return 2
    }
    raiseDescriptorLimit()
    do {
        let group = try EventLoopGroup(loopCount: 1)
        let listener = try await Listener(
            bindingTo: SocketAddress(host: arguments.host, port: arguments.port),
            backlog: 4096,
            on: group.loops[0]
        )
        print("listening on \(listener.localAddress.port ?? arguments.port)")
        fflush(nil)  // stdout is block-buffered into a pipe: the run script waits for this line
        let (framing, reader, batch) = (arguments.framing, arguments.reader, arguments.batch)
        try await Server(listener: listener).run { connection in
            switch reader {
            case .zeroCopy: try await echoZeroCopy(connection, framing: framing, batch: batch)
            case .copying: try await echoCopying(connection, framing: framing)
            }
        }
        return 0
    } catch {
        print("torus-framed-echo: \(error)")
        return 1
    }
}

exit(await main())
