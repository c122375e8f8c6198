import Foundation
import Testing
@testable import QScheduleAgent

@Suite("docs/openapi.yaml")
struct OpenAPITests {
    /// `METHOD /path` pairs of the spec, with every `{name}` written `{}`.
    static func documentedOperations() throws -> Set<String> {
        let path = ConfigLoaderTests.repositoryRoot.appendingPathComponent("docs/openapi.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var operations: Set<String> = []
        var currentPath: String?
        var inPaths = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.hasPrefix(" "), !line.isEmpty { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                currentPath = String(line.dropFirst(2).dropLast())
                    .replacingOccurrences(of: #"\{[^}]*\}"#, with: "{}", options: .regularExpression)
            } else if let currentPath, line.hasPrefix("    "), !line.hasPrefix("     ") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "delete", "patch"].contains(String(method)) {
                    operations.insert("\(method.uppercased()) \(currentPath)")
                }
            }
        }
        return operations
    }

    @Test("every route registered in code is described, and nothing else")
    func routesMatchTheSpec() throws {
        let documented = try Self.documentedOperations()
        let served = Set(AgentHTTPResponder.makeRoutes().routes.map { "\($0.method.rawValue) \($0.pattern)" })
        #expect(served.count >= 15)
        #expect(served.subtracting(documented).isEmpty, "served but not in docs/openapi.yaml: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
    }

    /// The `required: [...]` list of `components.schemas.<name>` in the spec.
    static func requiredFields(ofSchema name: String) throws -> Set<String> {
        let path = ConfigLoaderTests.repositoryRoot.appendingPathComponent("docs/openapi.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let start = try #require(text.range(of: "\n    \(name):\n"))
        let rest = text[start.upperBound...]
        let line = try #require(rest.split(separator: "\n").first { $0.hasPrefix("      required: [") })
        return Set(line.drop { $0 != "[" }.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    @Test("the report and heartbeat the agent sends carry exactly the fields the spec requires")
    func sentPayloadsMatchTheSpec() async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        let jobs = ReportOutboxTests.jobs(reportURL: receiver.reportURL)
            .replacingOccurrences(of: "heartbeat_interval = 0", with: "heartbeat_interval = 1")
        try await InProcessAgent.with(jobs: jobs) { agent in
            _ = try await ReportOutboxTests.dispatch(agent, 1)
            #expect(await eventually { !receiver.state.reports.isEmpty && !receiver.state.heartbeats.isEmpty })
            let report = try #require(receiver.state.reports.first?.objectValue)
            #expect(Set(report.keys) == (try Self.requiredFields(ofSchema: "Report")))
            let heartbeat = try #require(receiver.state.heartbeats.first?.objectValue)
            #expect(Set(heartbeat.keys) == (try Self.requiredFields(ofSchema: "Heartbeat")))
        }
    }
}
