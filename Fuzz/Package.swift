// swift-tools-version:6.0
import PackageDescription

// A package of its own for the libFuzzer targets, so that the sanitizer flags (given on the
// command line by build.sh) never reach the main build. See README.md.
//
// Sources/MQTTCodec is a symlink to the codec sources of the main package: SwiftPM cannot depend
// on one target of another package by path, and it refuses target paths outside the package.
//
// SwiftPM links a Swift executable with its entry point renamed to `<Module>_main` and `main`
// aliased to it, so `-parse-as-library` code plus libFuzzer's own main() fails to link
// ("undefined symbol 'FuzzDecoder_main'"). Instead main.swift hands control to libFuzzer's
// driver, LLVMFuzzerRunDriver, which CLibFuzzerDriver declares.
let package = Package(
    name: "RoostFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "MQTTCodec", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Declares libFuzzer's LLVMFuzzerRunDriver, which FuzzDecoder's main.swift calls.
        .target(name: "CLibFuzzerDriver"),
        .executableTarget(
            name: "FuzzDecoder",
            dependencies: ["MQTTCodec", "CLibFuzzerDriver", .product(name: "NIOCore", package: "swift-nio")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
