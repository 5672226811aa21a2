// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "HybridPlanner",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "PlannerCore", targets: ["PlannerCore"]),
        .executable(name: "planner", targets: ["planner"]),
        .executable(name: "planner-bench", targets: ["PlannerBench"]),
        .library(name: "CPUEngine", targets: ["CPUEngine"]),
        .executable(name: "planner-cpu-capture", targets: ["CPUCapture"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
    ],
    targets: [
        .target(
            name: "PlannerCore",
            dependencies: [
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .executableTarget(
            name: "planner",
            dependencies: [
                "PlannerCore",
                "CPUEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "PlannerBench", dependencies: ["PlannerCore", "CPUEngine", "CBLAS"]),
        .testTarget(name: "PlannerCoreTests", dependencies: ["PlannerCore", .product(name: "GRDB", package: "GRDB.swift")]),
        // OpenBLAS through pkg-config (Debian: libopenblas-dev); the module map includes <cblas.h>.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // An fp32 decoder on the CPU that executes the planner's placements (Sources/CPUEngine/Engine.swift).
        // Thread-to-core pinning (sched_setaffinity) for the engine's compute and copy threads.
        .target(name: "CAffinity", path: "Sources/CAffinity"),
        .target(name: "CPUEngine", dependencies: ["PlannerCore", "CBLAS", "CAffinity"]),
        .executableTarget(name: "CPUCapture", dependencies: ["PlannerCore", "CPUEngine"]),
        .testTarget(name: "CPUEngineTests", dependencies: ["CPUEngine", "PlannerCore"]),
    ]
)
