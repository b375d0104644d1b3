import ExampleProtocols
import Torus

/// Serves one chat client: reads its lines and turns them into room calls. What the room
/// says to the client is queued on the connection with `send`, from the room.
enum ChatClientHandler {
    /// Lines longer than this are cut into pieces of this size.
    static let maxLineLength = 4096

    static func serve(_ connection: isolated Connection, room: ChatRoom) async {
        let id = await room.join(connection)
        let reader = BufferedReader(connection)
        var decoder = ChatLineDecoder(maxLength: maxLineLength)
        var handled = 0
        do {
            while let line = try await reader.readFrame(using: &decoder) {
                if try await handle(line, id: id, room: room) == false { break }
                // The room calls do not suspend (same loop): every so often, give the loop a
                // turn to send what the lines queued before this client's next bytes, or a
                // flood from one sender would fill fast readers' queues too.
                handled += 1
                if handled % 64 == 0 { await Task.yield() }
            }
        } catch {
            // Reset, closed by the room, or a line cut by the end of the stream: the client leaves.
        }
        await room.leave(id)
    }

    /// Handles one line; false when the client asked to leave.
    private static func handle(_ line: [UInt8], id: Int, room: ChatRoom) async throws -> Bool {
        guard !line.isEmpty else { return true }
        guard line.first == UInt8(ascii: "/") else {
            await room.say(line, from: id)
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
