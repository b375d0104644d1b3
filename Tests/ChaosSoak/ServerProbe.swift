#if canImport(Glibc)
import Glibc
#endif

/// Reads a server process's health from `/proc`: its open descriptors, its resident memory
/// and whether it is still running.
struct ServerProbe {
    let name: String
    let pid: pid_t

    /// The number of open descriptors (entries of `/proc/PID/fd`), or nil if the process is
    /// gone.
    func descriptorCount() -> Int? {
        guard let directory = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    /// Resident set size in bytes (`VmRSS` of `/proc/PID/status`), or nil if the process is
    /// gone.
    func residentBytes() -> Int? {
        guard let status = Self.readFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.dropFirst("VmRSS:".count).filter { $0.isNumber }
            return Int(String(digits)).map { $0 * 1024 }
        }
        return nil
    }

    /// Whether the process exists and is not a zombie.
    func isAlive() -> Bool {
        guard let stat = Self.readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        // "PID (comm) STATE ...": the state follows the last ')'.
        let state = stat[close...].dropFirst().drop { $0 == " " }.first
        return state != nil && state != "Z" && state != "X"
    }

    /// Polls the descriptor count every 20 ms until it equals `target` or `timeout` passes;
    /// returns the last count and how long it took.
    func waitForDescriptorCount(_ target: Int, timeout: Double) -> (count: Int?, seconds: Double) {
        let start = Clock.now()
        let deadline = start + Clock.seconds(timeout)
        while true {
            let count = descriptorCount()
            let now = Clock.now()
            if count == target || count == nil || now >= deadline {
                return (count, Double(now - start) / 1e9)
            }
            usleep(20_000)
        }
    }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
