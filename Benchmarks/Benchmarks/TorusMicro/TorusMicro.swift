// Micro-benchmarks of Torus engine operations: time and heap allocations per operation.
//
//   swift package --package-path Benchmarks benchmark            (or Benchmarks/run --micro)
//
// Every benchmark runs 1,000 operations per sample (`scalingFactor: .kilo`); package-benchmark
// reports the metrics per operation (the columns marked `*`), so `Malloc (total)` is heap
// allocations per operation, counted in the whole process (the event loop thread included) by
// the malloc interposer.
//
// Each benchmark gets a fresh `MicroFixture` (MicroFixture.swift): one event loop, a loopback
// listener and a connected TCP pair whose server side echoes on the loop with the zero-copy
// `receive()`. An "echo" is one write by the client and the read of its echo: two sends and
// two receives through the ring.
import Benchmark

// Set by each benchmark's setup, cleared by its teardown; benchmarks run one at a time.
nonisolated(unsafe) var fixture: MicroFixture!

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 200,
        setup: { fixture = try await MicroFixture() },
        teardown: {
            await fixture.shutdown()
            fixture = nil
        }
    )

    func measure(_ benchmark: Benchmark, _ operation: (MicroFixture, Int) async throws -> Void) async throws {
        let iterations = benchmark.scaledIterations.count
        benchmark.startMeasurement()
        try await operation(fixture, iterations)
        benchmark.stopMeasurement()
    }

    // The shortest trip through the ring: a zero timeout SQE and its CQE, on the loop.
    Benchmark("nop: sleep(for: .zero) on the loop") { benchmark in
        try await measure(benchmark) { try await $0.nops(iterations: $1) }
    }
    // What the task-group form pays per call: global executor -> loop -> global executor, no I/O.
    Benchmark("hop: actor call from the global executor") { benchmark in
        try await measure(benchmark) { try await $0.hops(iterations: $1) }
    }
    // The pure socket round trip: a 1-byte write and the read of its echo over loopback TCP.
    Benchmark("echo 1 B: write(UnsafeRawBufferPointer) + read(into:)") { benchmark in
        try await measure(benchmark) { try await $0.bufferRoundTrips(size: 1, iterations: $1) }
    }
    Benchmark("echo 64 B: write(UnsafeRawBufferPointer) + read(into:)") { benchmark in
        try await measure(benchmark) { try await $0.bufferRoundTrips(size: 64, iterations: $1) }
    }
    Benchmark("echo 16 KiB: write(UnsafeRawBufferPointer) + read(into:)") { benchmark in
        try await measure(benchmark) { try await $0.bufferRoundTrips(size: 16384, iterations: $1) }
    }
    Benchmark("echo 64 B: write(UnsafeRawBufferPointer) + receive()") { benchmark in
        try await measure(benchmark) { try await $0.receiveRoundTrips(size: 64, iterations: $1) }
    }
    Benchmark("echo 16 KiB: write(UnsafeRawBufferPointer) + receive()") { benchmark in
        try await measure(benchmark) { try await $0.receiveRoundTrips(size: 16384, iterations: $1) }
    }
    Benchmark("echo 64 B: write([UInt8]) + read(maxBytes:)") { benchmark in
        try await measure(benchmark) { try await $0.arrayRoundTrips(size: 64, iterations: $1) }
    }
    Benchmark("echo 16 KiB: write([UInt8]) + read(maxBytes:)") { benchmark in
        try await measure(benchmark) { try await $0.arrayRoundTrips(size: 16384, iterations: $1) }
    }
    // A client connect, the server's accept, and both closes.
    Benchmark("accept + connect + close") { benchmark in
        try await measure(benchmark) { try await $0.acceptConnectClose(iterations: $1) }
    }
}
