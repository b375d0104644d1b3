import ExampleProtocols

/// The commands: enough of Redis for `redis-cli` and `redis-benchmark`, with Redis's replies
/// and error texts.
extension KVStore {
    /// Runs one command, appending its reply. Returns true when the connection should close.
    func run(_ arguments: RESPCommand, into output: inout RESPEncoder) -> Bool {
        let name = KVSyntax.upperName(arguments[0])
        let count = arguments.count
        func arity(_ valid: Bool) -> Bool {
            if !valid { output.error("ERR wrong number of arguments for '\(name.lowercased())' command") }
            return valid
        }
        switch name {
        case "PING":
            guard arity(count <= 2) else { break }
            if count == 2 { output.bulk(arguments[1]) } else { output.simpleString("PONG") }
        case "ECHO":
            guard arity(count == 2) else { break }
            output.bulk(arguments[1])
        case "GET":
            guard arity(count == 2) else { break }
            output.bulk(live(arguments[1])?.value)
        case "SET":
            guard arity(count >= 3) else { break }
            set(arguments, into: &output)
        case "DEL":
            guard arity(count >= 2) else { break }
            var removed = 0
            for key in arguments.dropFirst() where live(key) != nil {
                entries.removeValue(forKey: key)
                removed += 1
            }
            output.integer(removed)
        case "EXISTS":
            guard arity(count >= 2) else { break }
            output.integer(arguments.dropFirst().count { live($0) != nil })
        case "INCR", "DECR":
            guard arity(count == 2) else { break }
            add(name == "INCR" ? 1 : -1, to: arguments[1], into: &output)
        case "INCRBY", "DECRBY":
            guard arity(count == 3) else { break }
            guard let amount = KVSyntax.integer(arguments[2]), amount != .min else {
                output.error("ERR value is not an integer or out of range")
                break
            }
            add(name == "INCRBY" ? amount : -amount, to: arguments[1], into: &output)
        case "MGET":
            guard arity(count >= 2) else { break }
            let now = ContinuousClock.now
            output.arrayHeader(count - 1)
            for key in arguments.dropFirst() { output.bulk(live(key, now: now)?.value) }
        case "MSET":
            guard arity(count >= 3 && count % 2 == 1) else { break }
            for pair in stride(from: 1, to: count, by: 2) {
                store(KVEntry(value: Array(arguments[pair + 1]), expiresAt: nil), at: arguments[pair])
            }
            output.simpleString("OK")
        case "EXPIRE", "PEXPIRE":
            guard arity(count == 3) else { break }
            expire(arguments[1], after: arguments[2], unit: name == "EXPIRE" ? .seconds(1) : .milliseconds(1), into: &output)
        case "PERSIST":
            guard arity(count == 2) else { break }
            guard var entry = live(arguments[1]), entry.expiresAt != nil else {
                output.integer(0)
                break
            }
            entry.expiresAt = nil
            store(entry, at: arguments[1])
            output.integer(1)
        case "TTL", "PTTL":
            guard arity(count == 2) else { break }
            ttl(arguments[1], inMilliseconds: name == "PTTL", into: &output)
        case "DBSIZE":
            guard arity(count == 1) else { break }
            output.integer(purgeExpired())
        case "FLUSHDB", "FLUSHALL":
            entries.removeAll()
            output.simpleString("OK")
        case "SELECT":
            guard arity(count == 2) else { break }
            if KVSyntax.integer(arguments[1]) == 0 { output.simpleString("OK") } else { output.error("ERR DB index is out of range") }
        case "COMMAND":
            command(arguments, into: &output)
        case "CONFIG":
            config(arguments, into: &output)
        case "CLIENT":
            // redis-cli and client libraries name their connection; nothing to keep.
            guard arity(count >= 2) else { break }
            if KVSyntax.upperName(arguments[1]) == "GETNAME" { output.nullBulk() } else { output.simpleString("OK") }
        case "QUIT":
            output.simpleString("OK")
            return true
        default:
            var message = "ERR unknown command '\(String(decoding: arguments[0], as: UTF8.self))', with args beginning with: "
            for argument in arguments.dropFirst().prefix(8) { message += "'\(String(decoding: argument.prefix(64), as: UTF8.self))' " }
            output.error(message)
        }
        return false
    }

    private func set(_ arguments: RESPCommand, into output: inout RESPEncoder) {
        var expiresAt: ContinuousClock.Instant?
        var onlyIfMissing = false
        var onlyIfPresent = false
        var keepTTL = false
        var index = 3
        while index < arguments.count {
            let option = KVSyntax.upperName(arguments[index])
            switch option {
            case "NX": onlyIfMissing = true
            case "XX": onlyIfPresent = true
            case "KEEPTTL": keepTTL = true
            case "EX", "PX":
                guard expiresAt == nil, index + 1 < arguments.count else {
                    output.error("ERR syntax error")
                    return
                }
                guard let amount = KVSyntax.integer(arguments[index + 1]), amount > 0, amount < Int(Int32.max) * 1000 else {
                    output.error("ERR invalid expire time in 'set' command")
                    return
                }
                expiresAt = .now + (option == "EX" ? .seconds(amount) : .milliseconds(amount))
                index += 1
            default:
                output.error("ERR syntax error")
                return
            }
            index += 1
        }
        if (onlyIfMissing && onlyIfPresent) || (keepTTL && expiresAt != nil) {
            output.error("ERR syntax error")
            return
        }
        let existing = live(arguments[1])
        if (onlyIfMissing && existing != nil) || (onlyIfPresent && existing == nil) {
            output.nullBulk()
            return
        }
        if keepTTL { expiresAt = existing?.expiresAt }
        store(KVEntry(value: Array(arguments[2]), expiresAt: expiresAt), at: arguments[1])
        output.simpleString("OK")
    }

    private func add(_ amount: Int, to key: ArraySlice<UInt8>, into output: inout RESPEncoder) {
        var entry = live(key) ?? KVEntry(value: Array("0".utf8), expiresAt: nil)
        guard let current = KVSyntax.integer(entry.value[...]) else {
            output.error("ERR value is not an integer or out of range")
            return
        }
        let (result, overflow) = current.addingReportingOverflow(amount)
        guard !overflow else {
            output.error("ERR increment or decrement would overflow")
            return
        }
        entry.value = KVSyntax.decimal(result)
        store(entry, at: key)
        output.integer(result)
    }

    private func expire(_ key: ArraySlice<UInt8>, after text: ArraySlice<UInt8>, unit: Duration, into output: inout RESPEncoder) {
        guard let amount = KVSyntax.integer(text), abs(amount) < Int(Int32.max) * 1000 else {
            output.error("ERR value is not an integer or out of range")
            return
        }
        guard var entry = live(key) else {
            output.integer(0)
            return
        }
        if amount <= 0 {
            entries.removeValue(forKey: key)  // Redis deletes a key given a past expiry.
        } else {
            entry.expiresAt = .now + unit * amount
            store(entry, at: key)
        }
        output.integer(1)
    }

    private func ttl(_ key: ArraySlice<UInt8>, inMilliseconds: Bool, into output: inout RESPEncoder) {
        guard let entry = live(key) else {
            output.integer(-2)
            return
        }
        guard let expiresAt = entry.expiresAt else {
            output.integer(-1)
            return
        }
        let left = (expiresAt - .now).components
        let milliseconds = Int(left.seconds) * 1000 + Int(left.attoseconds / 1_000_000_000_000_000)
        output.integer(inMilliseconds ? milliseconds : (milliseconds + 500) / 1000)
    }

    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`: enough for redis-cli's start-up (it asks
    /// for the docs to show hints; an empty reply means no hints).
    private func command(_ arguments: RESPCommand, into output: inout RESPEncoder) {
        if arguments.count >= 2, KVSyntax.upperName(arguments[1]) == "COUNT" {
            output.integer(KVStore.commandNames.count)
        } else {
            output.arrayHeader(0)
        }
    }

    /// `CONFIG GET name...`: the few settings benchmarks ask for, as name/value pairs;
    /// `CONFIG SET` is accepted and ignored.
    private func config(_ arguments: RESPCommand, into output: inout RESPEncoder) {
        guard arguments.count >= 2 else {
            output.error("ERR wrong number of arguments for 'config' command")
            return
        }
        switch KVSyntax.upperName(arguments[1]) {
        case "GET":
            let wanted = arguments.dropFirst(2).map { String(decoding: $0, as: UTF8.self).lowercased() }
            let pairs = KVStore.settings.filter { setting in wanted.contains { $0 == "*" || $0 == setting.name } }
            output.arrayHeader(pairs.count * 2)
            for pair in pairs {
                output.bulk(pair.name.utf8)
                output.bulk(pair.value.utf8)
            }
        case "SET", "RESETSTAT":
            output.simpleString("OK")
        default:
            output.error("ERR unknown subcommand '\(String(decoding: arguments[1], as: UTF8.self))'")
        }
    }

    static let settings: [(name: String, value: String)] = [
        ("save", ""), ("appendonly", "no"), ("databases", "1"), ("maxmemory", "0"),
    ]

    static let commandNames = [
        "PING", "ECHO", "GET", "SET", "DEL", "EXISTS", "INCR", "DECR", "INCRBY", "DECRBY", "MGET", "MSET",
        "EXPIRE", "PEXPIRE", "PERSIST", "TTL", "PTTL", "DBSIZE", "FLUSHDB", "FLUSHALL", "SELECT", "COMMAND",
        "CONFIG", "CLIENT", "QUIT",
    ]
}
