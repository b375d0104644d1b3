import Testing
@testable import Torus

/// An actor on a given loop, to call engine operations the way the socket actors do.
actor OnLoop {
    let loop: EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    init(_ loop: EventLoop) { self.loop = loop }
    func nops(_ count: Int) async -> [Int32] {
        var results: [Int32] = []
        for _ in 0..<count { results.append(await loop.nop().result) }
        return results
    }
}

@Test func nopRoundTripsStayOnTheLoop() async throws {
    let group = try EventLoopGroup(loopCount: 1)
    let results = await OnLoop(group.loops[0]).nops(100)
    #expect(results == Array(repeating: 0, count: 100))
    await group.shutdown()
}
