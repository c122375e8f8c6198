import Foundation
import Testing
@testable import QScheduleAgent

@Suite("qagent cron next")
struct CronCommandTests {
    @Test("prints the next times; an expression starting with '-' is an invalid expression (exit 2), not an unknown option")
    func cronNext() async throws {
        var result = try await AgentProcess.runCLI(["cron", "next", "0 0 12 L-2W * ?", "--after", "2024-01-01T00:00:00Z", "--tz", "UTC", "--count", "2"])
        #expect(result.status == 0)
        #expect(result.output == "1706529600000  2024-01-29T12:00:00Z\n1709035200000  2024-02-27T12:00:00Z\n", "\(result.output)")
        result = try await AgentProcess.runCLI(["cron", "next", "-5 * * * * ?", "--tz", "UTC"])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output == "qagent cron: invalid expression: seconds: a value is missing: \"-5\"\n", "\(result.output)")
        result = try await AgentProcess.runCLI(["cron", "next", "--count", "1", "--tz", "UTC", "--after", "0", "-5/10 * * * * ?"])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.hasPrefix("qagent cron: invalid expression: seconds:"), "\(result.output)")
        result = try await AgentProcess.runCLI(["cron", "next"])
        #expect(result.status == 2)
        #expect(result.output.hasPrefix("qagent cron: missing expression"), "\(result.output)")
        result = try await AgentProcess.runCLI(["cron", "next", "0 0 12 * * ?", "--tz", "Mars/Base"])
        #expect(result.status == 2)
        #expect(result.output == "qagent cron: unknown time zone \"Mars/Base\"\n")
    }
}
