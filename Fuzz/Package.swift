// swift-tools-version: 6.1
// Coverage-guided fuzzing (libFuzzer) of Torus's parsers: SocketAddress, the framing helpers
// (BufferedReader), and the examples' HTTP/1.1 and RESP decoders. Its own package, built only
// with `-sanitize=fuzzer,address` by scripts/fuzz.sh, so that the core package never sees
// libFuzzer. Each target is one fuzzer; Corpus/NAME holds its committed seeds.
import PackageDescription

// -parse-as-library: libFuzzer runs the program; each target's `NAME_main` (the entry point
// SwiftPM gives an executable) hands control to libFuzzer's driver.
let fuzzer: [SwiftSetting] = [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "TorusFuzz",
    dependencies: [
        .package(name: "Torus", path: ".."),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "Torus", package: "Torus")],
                swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "FuzzSocketAddress", dependencies: ["FuzzSupport", .product(name: "Torus", package: "Torus")],
                          swiftSettings: fuzzer),
        .executableTarget(name: "FuzzFraming", dependencies: ["FuzzSupport", .product(name: "Torus", package: "Torus")],
                          swiftSettings: fuzzer),
        .executableTarget(name: "FuzzHTTP", dependencies: [
            "FuzzSupport", .product(name: "Torus", package: "Torus"), .product(name: "ExampleProtocols", package: "Torus"),
        ], swiftSettings: fuzzer),
        .executableTarget(name: "FuzzRESP", dependencies: [
            "FuzzSupport", .product(name: "Torus", package: "Torus"), .product(name: "ExampleProtocols", package: "Torus"),
        ], swiftSettings: fuzzer),
    ]
)
