// swift-tools-version: 6.1
// The Torus benchmarks: a C load generator, echo servers written with Torus, SwiftNIO and plain
// C liburing, an idle-connection memory probe and package-benchmark micro-benchmarks.
// Its own package so that the core package never builds SwiftNIO or package-benchmark.
// Run everything with `Benchmarks/run` (see README.md).
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "TorusBenchmarks",
    products: [
        .executable(name: "loadgen", targets: ["LoadGen"]),
        .executable(name: "idle-conns", targets: ["IdleConns"]),
        .executable(name: "c-uring-echo", targets: ["CUringEcho"]),
        .executable(name: "torus-echo", targets: ["TorusEcho"]),
        .executable(name: "nio-echo", targets: ["NIOEcho"]),
        .executable(name: "torus-framed-echo", targets: ["TorusFramedEcho"]),
        .executable(name: "nio-framed-echo", targets: ["NIOFramedEcho"]),
        // Preloaded by `run --allocs` to count a server's heap allocations (LD_PRELOAD).
        .library(name: "malloc-count", type: .dynamic, targets: ["MallocCount"]),
        .executable(name: "udp-loadgen", targets: ["UDPLoadGen"]),
        .executable(name: "torus-udp-echo", targets: ["TorusUDPEcho"]),
        .executable(name: "nio-udp-echo", targets: ["NIOUDPEcho"]),
        .executable(name: "hummingbird-hello", targets: ["HummingbirdHello"]),
        .executable(name: "nio-http-hello", targets: ["NIOHTTPHello"]),
        .executable(name: "nio-https-hello", targets: ["NIOHTTPSHello"]),
        .executable(name: "c-tls-echo", targets: ["CTLSEcho"]),
        .executable(name: "tls-bulk", targets: ["TLSBulk"]),
        .executable(name: "tls-conns", targets: ["TLSConnLoad"]),
    ],
    dependencies: [
        .package(name: "Torus", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        // LineBasedFrameDecoder and LengthFieldBasedFrameDecoder for the framed NIO echo (`run --framed`).
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        // The HTTP comparison for `run --http`; traits off: no swift-configuration, no Foundation extras.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1", traits: []),
        // The TLS comparison for `run --https`: NIOSSLServerHandler in front of the raw NIO server.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // C targets are built with -O2 in release (SwiftPM's default).
        // Load generator: epoll, one pinned thread, verifies every echoed byte.
        .executableTarget(name: "LoadGen"),
        // Opens many idle connections and reports the server's RSS per connection.
        .executableTarget(name: "IdleConns"),
        // Plain C liburing echo server: the physical reference.
        .executableTarget(
            name: "CUringEcho",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // Torus echo server, `--mode on-loop`, `task-group`, `isolated` or `receive`.
        .executableTarget(
            name: "TorusEcho",
            dependencies: [.product(name: "Torus", package: "Torus")],
            swiftSettings: swift6
        ),
        // SwiftNIO echo server, `--mode handler` or `--mode async`.
        .executableTarget(
            name: "NIOEcho",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        // Torus framed echo server (`run --framed`): BufferedReader, `--framing line|length4`,
        // `--reader zero-copy|copying`.
        .executableTarget(
            name: "TorusFramedEcho",
            dependencies: [.product(name: "Torus", package: "Torus")],
            swiftSettings: swift6
        ),
        // SwiftNIO framed echo server (`run --framed`): ByteToMessageHandler with NIOExtras'
        // line or length-field decoder, then a handler that writes each frame back.
        .executableTarget(
            name: "NIOFramedEcho",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
            ],
            swiftSettings: swift6
        ),
        // Counts malloc & co. of a process it is preloaded into; reports on SIGUSR2.
        .target(name: "MallocCount"),
        // UDP load generator: epoll, connected sockets with a window each, checks every byte.
        .executableTarget(name: "UDPLoadGen"),
        // Torus UDP echo server: one loop, zero-copy receive, send from the receive buffer.
        .executableTarget(
            name: "TorusUDPEcho",
            dependencies: [.product(name: "Torus", package: "Torus")],
            swiftSettings: swift6
        ),
        // SwiftNIO UDP echo server: DatagramBootstrap, one thread, a ChannelInboundHandler.
        .executableTarget(
            name: "NIOUDPEcho",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        // Hummingbird 2 `Hello, World!` server, the framework reference for `run --http`.
        .executableTarget(
            name: "HummingbirdHello",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        // Raw SwiftNIO HTTP/1.1 `Hello, World!` server (NIOHTTP1 pipeline + one handler).
        .executableTarget(
            name: "NIOHTTPHello",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        // nio-http-hello with NIOSSLServerHandler first in the pipeline (`run --https`): NIOSSL
        // (BoringSSL) against Torus's TorusTLS (the system's OpenSSL 3).
        .executableTarget(
            name: "NIOHTTPSHello",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swift6
        ),
        // Plain C OpenSSL echo server, blocking, one connection at a time: "OpenSSL doing the
        // same work" as echo-server --tls-cert in `run --https`'s bulk cell.
        .executableTarget(
            name: "CTLSEcho",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // Plain C OpenSSL bulk client for `run --https`: one TLS connection, sends N MiB in
        // chunks with a window in flight, reads the echo back and checks every byte.
        .executableTarget(
            name: "TLSBulk",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // Plain C OpenSSL new-connections client for `run --https`: N connections at once, each
        // one full handshake (no session kept or offered) and one `Connection: close` request.
        .executableTarget(
            name: "TLSConnLoad",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // package-benchmark micro-benchmarks: `swift package --package-path Benchmarks benchmark`.
        .executableTarget(
            name: "TorusMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Torus", package: "Torus"),
            ],
            path: "Benchmarks/TorusMicro",
            swiftSettings: swift6,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
