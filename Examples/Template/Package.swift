// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "my-agent",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Where you get qagent from (its repository or your mirror), at the release you run.
        .package(url: "https://github.com/qagent/qagent.git", from: "0.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "my-agent",
            dependencies: [.product(name: "QScheduleAgent", package: "qagent")]
        ),
        .testTarget(
            name: "my-agentTests",
            dependencies: ["my-agent", .product(name: "QScheduleAgentTesting", package: "qagent")]
        ),
    ]
)
