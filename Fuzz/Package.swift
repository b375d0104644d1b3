// swift-tools-version: 6.1
// Coverage-guided fuzzing (libFuzzer) of Torus's parsers: SocketAddress, the framing helpers
// (BufferedReader), the examples' HTTP/1.1 and RESP decoders, and TorusTLS's handling of TLS
// records (over memory, through TorusTLS's `Fuzzing` SPI). Its own package, built only with
// `-sanitize=fuzzer,address` by scripts/fuzz.sh, so that the core package never sees
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
        // OpenSSL for the TLS target's start-up (throwaway certificates) and libFuzzer's extra
        // counters (coverage of OpenSSL's states, which are not instrumented).
        .target(name: "CFuzzTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .executableTarget(name: "FuzzTLSRecords", dependencies: [
            "FuzzSupport", "CFuzzTLS", .product(name: "TorusTLS", package: "Torus"),
        ], swiftSettings: fuzzer),
    ]
)
