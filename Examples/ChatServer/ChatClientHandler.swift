import ExampleProtocols
import Torus

/// Serves one chat client: a reader (this task) that turns received lines into room calls,
/// and a writer task that drains the client's outbox.
enum ChatClientHandler {
    /// Lines longer than this are cut into pieces of this size.
    static let maxLineLength = 4096
    /// A write that the client does not take within this time ends the client.
    static let writeTimeout = Duration.seconds(10)

    static func serve(_ connection: Connection, room: ChatRoom, queueCapacity: Int) async {
        let outbox = ChatOutbox(capacity: queueCapacity)
        let id = await room.join(connection, outbox: outbox)
        await withDiscardingTaskGroup { group in
            group.addTask {
                await connection.withIsolation { connection in
                    while let lines = await outbox.next() {
                        do {
                            try await connection.write(contentsOf: lines, timeout: writeTimeout)
                        } catch {
                            break  // Reset, closed by the room, or too slow: stop writing.
                        }
                    }
                }
                await room.leave(id)  // The writer failed: the client is gone.
            }
            await connection.withIsolation { await readLines($0, id: id, room: room) }
            await room.leave(id)  // Ends the outbox; the writer finishes what is queued.
        }
        await connection.close()
    }

    private static func readLines(_ connection: isolated Connection, id: Int, room: ChatRoom) async {
        var pending = ByteAccumulator()
        do {
            while let bytes = try await connection.receive() {
                bytes.withUnsafeBytes { pending.append($0) }
                _ = consume bytes
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n"), from: pending.readIndex) {
                    var line = pending.storage[pending.readIndex..<newline]
                    pending.consume(newline + 1 - pending.readIndex)
                    if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                    if try await handle(line, id: id, room: room) == false { return }
                }
                while pending.readableCount >= maxLineLength {
                    let piece = pending.storage[pending.readIndex..<(pending.readIndex + maxLineLength)]
                    pending.consume(maxLineLength)
                    await room.say(Array(piece), from: id)
                }
                // The room calls above do not suspend (same loop): let the writers the lines
                // woke drain their outboxes before this client's next bytes, or a flood from
                // one sender would fill fast readers' outboxes too.
                await Task.yield()
            }
        } catch {
            // Reset, or closed by the room: the client leaves.
        }
    }

    /// Handles one line; false when the client asked to leave.
    private static func handle(_ line: ArraySlice<UInt8>, id: Int, room: ChatRoom) async throws -> Bool {
        guard !line.isEmpty else { return true }
        guard line.first == UInt8(ascii: "/") else {
            await room.say(Array(line), from: id)
            return true
        }
        let words = line.split(separator: UInt8(ascii: " "), maxSplits: 1)
        let command = String(decoding: words[0], as: UTF8.self)
        let argument = words.count > 1 ? String(decoding: words[1], as: UTF8.self) : ""
        switch command {
        case "/nick":
            await room.rename(id, to: argument.trimmingSpaces)
        case "/quit":
            return false
        default:
            await room.notify(id, "* unknown command \(command); try /nick NAME or /quit")
        }
        return true
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
