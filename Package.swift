// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "qagent",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QScheduleAgent", targets: ["QScheduleAgent"]),
        .library(name: "QScheduleAgentTesting", targets: ["QScheduleAgentTesting"]),
        .executable(name: "qagent", targets: ["qagent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        .target(name: "CQAgentShims"),
        .target(
            name: "QScheduleAgent",
            dependencies: [
                "CQAgentShims",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "QScheduleAgentTesting",
            dependencies: ["QScheduleAgent"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "qagent",
            dependencies: ["QScheduleAgent"],
            swiftSettings: swiftSettings
        ),
        // The example handlers (typed, closure, blocking, completed later), tested with
        // QScheduleAgentTesting and quoted by the handler guide.
        .target(
            name: "QScheduleAgentExamples",
            dependencies: ["QScheduleAgent"],
            path: "Examples/Handlers",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "qagent-example",
            dependencies: ["QScheduleAgent", "QScheduleAgentExamples"],
            path: "Examples/qagent-example",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "qagent-bench",
            dependencies: ["QScheduleAgent", .product(name: "Subprocess", package: "swift-subprocess")],
            path: "Benchmarks/Sources/qagent-bench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QScheduleAgentTests",
            dependencies: [
                "QScheduleAgent",
                "QScheduleAgentTesting",
                "QScheduleAgentExamples",
                "qagent",
                "qagent-example",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ],
            // Read from the checkout by path (the upgrade tests' stores), not bundled.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
    ]
)
