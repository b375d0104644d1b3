// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Torus",
    products: [
        .library(name: "Torus", targets: ["Torus"]),
        .library(name: "TorusServiceLifecycle", targets: ["TorusServiceLifecycle"]),
        .library(name: "TorusTLS", targets: ["TorusTLS"]),
        // The examples' protocol code, as a product only for the fuzz package (Fuzz/).
        .library(name: "ExampleProtocols", targets: ["ExampleProtocols"]),
        .executable(name: "echo-server", targets: ["EchoServer"]),
        .executable(name: "echo-client", targets: ["EchoClient"]),
        .executable(name: "udp-echo-server", targets: ["UDPEchoServer"]),
        .executable(name: "udp-client", targets: ["UDPClient"]),
        .executable(name: "http-hello", targets: ["HTTPHello"]),
        .executable(name: "kv-server", targets: ["KVServer"]),
        .executable(name: "chat-server", targets: ["ChatServer"]),
        .executable(name: "tcp-proxy", targets: ["TCPProxy"]),
        .executable(name: "echo-service", targets: ["EchoService"]),
        .executable(name: "chaos-soak", targets: ["ChaosSoak"]),
        .executable(name: "fault-relay", targets: ["FaultRelay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The only target that touches liburing: a shim header and a few C helpers.
        .target(
            name: "CURing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        .target(
            name: "Torus",
            dependencies: [
                "CURing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
        // The only target that names OpenSSL (libssl-dev, OpenSSL 3): a shim header, the
        // transport BIO and wrappers for OpenSSL's macros.
        .target(
            name: "CTorusTLS",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // TLS streams, contexts and Server integration over OpenSSL; a module of its own so
        // that Torus itself links no libssl.
        .target(
            name: "TorusTLS",
            dependencies: ["Torus", "CTorusTLS"],
            swiftSettings: strictSwift
        ),
        // Runs a Torus server as a swift-service-lifecycle Service; a module of its own so that
        // Torus itself does not depend on ServiceLifecycle (and its Dispatch-based signals).
        .target(
            name: "TorusServiceLifecycle",
            dependencies: [
                "Torus",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "EchoService",
            dependencies: [
                "TorusServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/EchoService",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "EchoServer",
            dependencies: ["Torus", "TorusTLS", "ExampleProtocols", "ExampleServing"],
            path: "Examples/EchoServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "EchoClient",
            dependencies: ["Torus", "TorusTLS"],
            path: "Examples/EchoClient",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "UDPEchoServer",
            dependencies: ["Torus", "ExampleProtocols", "ExampleServing"],
            path: "Examples/UDPEchoServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "UDPClient",
            dependencies: ["Torus"],
            path: "Examples/UDPClient",
            swiftSettings: strictSwift
        ),
        // The examples' protocol code: HTTP/1.1 and RESP decoders (Torus `FrameDecoder`s, pure
        // functions of the bytes, so that their tests need no sockets), option parsing.
        .target(
            name: "ExampleProtocols",
            dependencies: ["Torus"],
            path: "Examples/Shared/ExampleProtocols",
            swiftSettings: strictSwift
        ),
        // What the example servers share on top of Torus: binding, the listening line, serving,
        // and a graceful stop on SIGTERM and SIGINT (UnixSignals: swift-service-lifecycle's
        // signal sequence, on Dispatch, which the examples may use and Torus does not).
        .target(
            name: "ExampleServing",
            dependencies: [
                "Torus", "TorusTLS", "ExampleProtocols",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/Shared/ExampleServing",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "HTTPHello",
            dependencies: ["Torus", "TorusTLS", "ExampleProtocols", "ExampleServing"],
            path: "Examples/HTTPHello",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "KVServer",
            dependencies: ["Torus", "TorusTLS", "ExampleProtocols", "ExampleServing"],
            path: "Examples/KVServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "ChatServer",
            dependencies: ["Torus", "ExampleProtocols", "ExampleServing"],
            path: "Examples/ChatServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "TCPProxy",
            dependencies: ["Torus", "ExampleProtocols", "ExampleServing"],
            path: "Examples/TCPProxy",
            swiftSettings: strictSwift
        ),
        // The chaos soak client (scripts/chaos-soak.sh): plain POSIX sockets, independent of
        // Torus, against the example servers; over TLS through OpenSSL itself (CChaosSoakTLS),
        // never through TorusTLS, so that a TLS bug on both sides cannot cancel out.
        .executableTarget(
            name: "ChaosSoak",
            dependencies: ["CChaosSoakTLS"],
            path: "Tests/ChaosSoak",
            swiftSettings: strictSwift
        ),
        // The fault relay (scripts/check-relay.sh): a TCP relay between a client and an example
        // server that delays, trickles, cuts, stalls or half-closes; plain POSIX sockets in C,
        // independent of Torus, like the soak client.
        .executableTarget(
            name: "FaultRelay",
            path: "Tests/FaultRelay"
        ),
        // The soak client's wrappers for OpenSSL's macros; its own, not CTorusTLS.
        .target(
            name: "CChaosSoakTLS",
            path: "Tests/ChaosSoakTLS",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        .testTarget(
            name: "ExampleProtocolsTests",
            dependencies: ["ExampleProtocols", "Torus"],
            swiftSettings: strictSwift
        ),
        // A test helper, not an example: runs a program under a seccomp filter that makes the
        // io_uring system calls fail (Tests/DenyIOUring/DenyIOUring.c). TorusTests runs it,
        // from the directory it is built into, on the echo-server example.
        .executableTarget(
            name: "DenyIOUring",
            path: "Tests/DenyIOUring"
        ),
        // A test helper too: runs a program whose accept and accept4 calls fail with ENFILE,
        // ENOMEM or EPERM (a seccomp filter whose supervisor can let them through again later;
        // Tests/FailAccept/FailAccept.c), for AcceptErrorTests on the epoll engine.
        .executableTarget(
            name: "FailAccept",
            path: "Tests/FailAccept"
        ),
        .testTarget(
            name: "TorusTests",
            dependencies: [
                "Torus", "CURing", "TorusTLS",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
