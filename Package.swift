// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Torus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Torus", targets: ["Torus"]),
        .executable(name: "echo-server", targets: ["EchoServer"]),
        .executable(name: "echo-client", targets: ["EchoClient"]),
        .executable(name: "udp-echo-server", targets: ["UDPEchoServer"]),
        .executable(name: "udp-client", targets: ["UDPClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
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
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "EchoServer",
            dependencies: ["Torus"],
            path: "Examples/EchoServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "EchoClient",
            dependencies: ["Torus"],
            path: "Examples/EchoClient",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "UDPEchoServer",
            dependencies: ["Torus"],
            path: "Examples/UDPEchoServer",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "UDPClient",
            dependencies: ["Torus"],
            path: "Examples/UDPClient",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "TorusTests",
            dependencies: ["Torus", "CURing"],
            swiftSettings: strictSwift
        ),
    ]
)
