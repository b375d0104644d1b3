import Testing
import Torus

extension TorusTests {
    /// UDP across the link with datagrams dropped at random: the sender accounts for every
    /// datagram, and every one that comes back is intact and comes back once.
    @Suite(.enabled(if: FaultHosts.unavailableReason == nil, Comment(rawValue: FaultHosts.unavailableReason ?? "")),
           .noDescriptorLeaks)
    struct UDPFaultTests {
        init() async throws {
            try await FaultHosts.inject(nil)
        }

        @Test func withFivePercentLossEachWayEveryEchoIsIntactAndTheLossesAreCounted() async throws {
            let port: UInt16 = 9201
            let echo = try await FaultHosts.startPeer(port: port, try builtProgram("udp-echo-server") + " --host \(FaultHosts.server) --port \(port)")
            try await FaultHosts.inject(FaultHosts.udpLoss(port: port, percent: 5), clientChains: FaultHosts.udpReplyLoss(port: port, percent: 5))
            let socket = try await DatagramSocket.connect(to: .ipv4(FaultHosts.server, port: port))
            let total = 2000
            let window = 50
            var received = Set<Int>()
            var duplicates = 0
            var corrupted = 0
            func datagram(_ sequence: Int) -> [UInt8] {
                // A sequence number and 196 bytes that depend on it.
                withUnsafeBytes(of: UInt32(sequence).bigEndian, Array.init) + (0..<196).map { UInt8(truncatingIfNeeded: sequence &* 31 &+ $0) }
            }
            func take(_ bytes: [UInt8]) {
                guard bytes.count == 200 else { corrupted += 1; return }
                let sequence = Int(bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                guard sequence < total, bytes == datagram(sequence) else { corrupted += 1; return }
                if !received.insert(sequence).inserted { duplicates += 1 }
            }
            for start in stride(from: 0, to: total, by: window) {
                for sequence in start..<min(total, start + window) { try await socket.send(datagram(sequence)) }
                // Answers until the window's are in or the link stays quiet for 200 ms.
                while received.filter({ $0 >= start }).count < min(window, total - start) {
                    guard let reply = try? await socket.read(timeout: .milliseconds(200)) else { break }
                    take(reply.bytes)
                }
            }
            // Late answers: until the link stays quiet for 500 ms.
            while let reply = try? await socket.read(timeout: .milliseconds(500)) { take(reply.bytes) }
            let lost = total - received.count
            print("UDPFaultTests: \(total) datagrams sent, \(received.count) echoed intact, \(lost) lost (\(Double(lost) * 100 / Double(total))%), \(duplicates) duplicated, \(corrupted) corrupted")
            #expect(corrupted == 0)
            #expect(duplicates == 0)
            // 5% each way loses about 9.75% of round trips; none lost, or most, would mean the
            // rules or the accounting are wrong.
            #expect(lost > 0 && lost < total / 4, "\(lost) of \(total) lost")
            await socket.close()
            try await FaultHosts.inject(nil)
            _ = echo
        }
    }
}
