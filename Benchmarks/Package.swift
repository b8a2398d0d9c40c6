// swift-tools-version:6.1
// Roost's micro-benchmarks (package-benchmark). A package of its own, so that building the broker
// never builds the benchmark tooling: run them with scripts/bench-micro.sh from the repository root.
import PackageDescription

let benchmarkPlugin: [Target.PluginUsage] = [.plugin(name: "BenchmarkPlugin", package: "benchmark")]

let package = Package(
    name: "RoostBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Roost", path: ".."),
        // The malloc interposer counts allocations without jemalloc.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MQTTCodec", package: "Roost"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/CodecBenchmarks",
            plugins: benchmarkPlugin
        ),
        .executableTarget(
            name: "RoutingBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MQTTCodec", package: "Roost"),
                .product(name: "RoostCore", package: "Roost"),
                .product(name: "RoostServer", package: "Roost"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RoutingBenchmarks",
            plugins: benchmarkPlugin
        ),
    ],
    swiftLanguageModes: [.v5]
)
