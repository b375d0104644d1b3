import Torus

/// Who is in the chat, and the broadcasting. An actor on the first event loop: with one loop
/// (the default) every connection handler reaches it with no thread hop.
///
/// Every line a client sends is queued at once on every other client's connection (its
/// outbox, bounded by `queueCapacity` bytes); a client whose queue is full is dropped (its
/// connection closed, the others told), so one slow reader never holds up the rest or grows
/// the server's memory.
actor ChatRoom {
    private struct Member {
        var name: String
        let connection: Connection
    }

    nonisolated let loop: EventLoop
    /// The most bytes queued for a client that is not keeping up.
    let queueCapacity: Int
    private var members: [Int: Member] = [:]
    private var nextID = 1

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    init(on loop: EventLoop, queueCapacity: Int) {
        self.loop = loop
        self.queueCapacity = queueCapacity
    }

    /// Adds a client under the name `guestN`, greets it and tells the others. Returns its id.
    func join(_ connection: Connection) async -> Int {
        let id = nextID
        nextID += 1
        let name = "guest\(id)"
        members[id] = Member(name: name, connection: connection)
        await notify(id, "* welcome, you are \(name)")
        await broadcast(Self.line("* \(name) joined"), except: id)
        return id
    }

    /// Sends `text` from client `id` to everyone else as `NAME: text`.
    func say(_ text: [UInt8], from id: Int) async {
        guard let member = members[id] else { return }
        var line = Array(member.name.utf8)
        line.reserveCapacity(line.count + text.count + 3)
        line.append(contentsOf: ": ".utf8)
        line.append(contentsOf: text)
        line.append(UInt8(ascii: "\n"))
        await broadcast(line, except: id)
    }

    /// Renames client `id`, telling everyone (the renamed client too); refuses names in use
    /// and names that are not 1–32 letters, digits, `-` or `_`.
    func rename(_ id: Int, to name: String) async {
        guard let member = members[id] else { return }
        let valid = (1...32).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 < 0x80 && Character(Unicode.Scalar($0)).isLetter) || ($0 >= 0x30 && $0 <= 0x39) }
        guard valid else {
            await notify(id, "* invalid nick: use 1-32 letters, digits, - or _")
            return
        }
        guard !members.values.contains(where: { $0.name == name }) else {
            await notify(id, "* nick \(name) is taken")
            return
        }
        members[id]?.name = name
        await broadcast(Self.line("* \(member.name) is now \(name)"), except: nil)
    }

    /// Tells client `id` something only it should see.
    func notify(_ id: Int, _ text: String) async {
        guard let member = members[id] else { return }
        if await !member.connection.send(Self.line(text), unlessQueuedPast: queueCapacity) { await drop(id) }
    }

    /// Removes client `id` (if still there) and tells the others.
    func leave(_ id: Int) async {
        guard let member = members.removeValue(forKey: id) else { return }
        await broadcast(Self.line("* \(member.name) left"), except: nil)
    }

    private func broadcast(_ line: [UInt8], except sender: Int?) async {
        var slow: [Int] = []
        for (id, member) in members where id != sender {
            if await !member.connection.send(line, unlessQueuedPast: queueCapacity) { slow.append(id) }
        }
        for id in slow { await drop(id) }
    }

    /// Drops a client that does not keep up: closes its connection (which ends its read; the
    /// close waits for its queue at most the write timeout, so it is not waited for here)
    /// and tells the others.
    private func drop(_ id: Int) async {
        guard let member = members.removeValue(forKey: id) else { return }
        let connection = member.connection
        Task { await connection.close() }
        await broadcast(Self.line("* \(member.name) was dropped: too slow"), except: nil)
    }

    private static func line(_ text: String) -> [UInt8] {
        Array((text + "\n").utf8)
    }
}
