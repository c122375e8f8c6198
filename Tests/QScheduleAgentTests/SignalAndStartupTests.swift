import Foundation
import Testing
@testable import QScheduleAgent

/// Signals an operator's environment sends, and start-up failures, through the real binary.
@Suite("End to end: signals and start-up errors", .serialized)
struct SignalAndStartupTests {
    @Test("SIGHUP reloads agent.conf (nothing changed here), SIGPIPE is ignored: the agent keeps serving, its task keeps running, SIGTERM still drains")
    func hangupIgnored() async throws {
        let jobs = """
            [[job]]
            name = "e.sleep"
            command = ["/bin/sleep", "1.5"]

            """
        try await AgentProcess.with(jobs: jobs) { agent in
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.sleep","taskId":"hup-1"}"#).ret == true)
            for signal in [SIGHUP, SIGPIPE, SIGHUP] {
                kill(agent.process.processIdentifier, signal)
                try await Task.sleep(for: .milliseconds(200))
                #expect(agent.process.isRunning, "signal \(signal) ended the agent")
                #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
            }
            #expect(agent.log.components(separatedBy: "configuration reloaded").count == 3, "\(agent.log)")
            #expect(agent.log.contains("trigger=SIGHUP"), "\(agent.log)")
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/hup-1.do").data?["lastState"] == .int(200) })
            #expect(try await agent.stop() == 0)
        }
    }

    @Test("a listen address in use: a clear error naming it, exit status 2")
    func portInUse() async throws {
        try await AgentProcess.with(jobs: "") { first in
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let config = agentTOML(dataDir: dir).replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(first.port)")
            try config.write(toFile: dir + "/agent.conf", atomically: true, encoding: .utf8)
            let result = try await AgentProcess.runCLI(["run", "--config", dir + "/agent.conf"])
            #expect(result.status == 2, "\(result.output)")
            #expect(result.output.contains("qagent: cannot listen on 127.0.0.1:\(first.port): address already in use\n"), "\(result.output)")
            #expect(!result.output.contains("Error:"), "raw library text: \(result.output)")
            #expect(try await first.call("GET", "/healthz", token: nil).status == .ok)
        }
    }
}
