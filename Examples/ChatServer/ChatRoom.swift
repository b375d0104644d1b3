import Torus

/// Who is in the chat, and the broadcasting. An actor on the first event loop: with one loop
/// (the default) every connection handler reaches it with no thread hop.
///
/// Every line a client sends goes to every other client's ``ChatOutbox`` at once; a client
/// whose outbox is full is dropped (its connection closed, the others told), so one slow
/// reader never holds up the rest or grows the server's memory.
actor ChatRoom {
    private struct Member {
        var name: String
        let outbox: ChatOutbox
        let connection: Connection
    }

    nonisolated let loop: EventLoop
    private var members: [Int: Member] = [:]
    private var nextID = 1

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    init(on loop: EventLoop) {
        self.loop = loop
    }

    /// Adds a client under the name `guestN`, greets it and tells the others. Returns its id.
    func join(_ connection: Connection, outbox: ChatOutbox) -> Int {
        let id = nextID
        nextID += 1
        let name = "guest\(id)"
        members[id] = Member(name: name, outbox: outbox, connection: connection)
        _ = outbox.push(Self.line("* welcome, you are \(name)"))
        broadcast(Self.line("* \(name) joined"), except: id)
        return id
    }

    /// Sends `text` from client `id` to everyone else as `NAME: text`.
    func say(_ text: [UInt8], from id: Int) {
        guard let member = members[id] else { return }
        var line = Array(member.name.utf8)
        line.reserveCapacity(line.count + text.count + 3)
        line.append(contentsOf: ": ".utf8)
        line.append(contentsOf: text)
        line.append(UInt8(ascii: "\n"))
        broadcast(line, except: id)
    }

    /// Renames client `id`, telling everyone (the renamed client too); refuses names in use
    /// and names that are not 1–32 letters, digits, `-` or `_`.
    func rename(_ id: Int, to name: String) {
        guard let member = members[id] else { return }
        let valid = (1...32).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 < 0x80 && Character(Unicode.Scalar($0)).isLetter) || ($0 >= 0x30 && $0 <= 0x39) }
        guard valid else {
            _ = member.outbox.push(Self.line("* invalid nick: use 1-32 letters, digits, - or _"))
            return
        }
        guard !members.values.contains(where: { $0.name == name }) else {
            _ = member.outbox.push(Self.line("* nick \(name) is taken"))
            return
        }
        members[id]?.name = name
        broadcast(Self.line("* \(member.name) is now \(name)"), except: nil)
    }

    /// Tells client `id` something only it should see.
    func notify(_ id: Int, _ text: String) {
        _ = members[id]?.outbox.push(Self.line(text))
    }

    /// Removes client `id` (if still there), ends its outbox and tells the others.
    func leave(_ id: Int) {
        guard let member = members.removeValue(forKey: id) else { return }
        member.outbox.close()
        broadcast(Self.line("* \(member.name) left"), except: nil)
    }

    private func broadcast(_ line: [UInt8], except sender: Int?) {
        var slow: [Int] = []
        for (id, member) in members where id != sender {
            if !member.outbox.push(line) { slow.append(id) }
        }
        for id in slow { drop(id) }
    }

    /// Drops a client that does not keep up: closes its connection (which ends its pending
    /// write and read) and tells the others.
    private func drop(_ id: Int) {
        guard let member = members.removeValue(forKey: id) else { return }
        member.outbox.close()
        let connection = member.connection
        Task { await connection.close() }
        broadcast(Self.line("* \(member.name) was dropped: too slow"), except: nil)
    }

    private static func line(_ text: String) -> [UInt8] {
        Array((text + "\n").utf8)
    }
}
