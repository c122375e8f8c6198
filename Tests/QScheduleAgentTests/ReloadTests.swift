import Foundation
import Testing
@testable import QScheduleAgent

/// Live reload against the real binary: SIGHUP, `qagent reload` and
/// `POST /api2/agent/reload.do` add, change and remove jobs without a restart; keys that
/// need a restart are reported and kept; an invalid file changes nothing.
@Suite("Live reload")
struct ReloadTests {
    static func job(_ name: String, _ command: String, extra: String = "") -> String {
        "[[job]]\nname = \"\(name)\"\ncommand = [\"/bin/sh\", \"-c\", \"\(command)\"]\n\(extra)\n"
    }

    /// Rewrites the agent's jobs: everything before the first `[[job]]` stays.
    static func rewriteJobs(_ agent: AgentProcess, _ jobs: String) throws {
        let text = try String(contentsOfFile: agent.configPath, encoding: .utf8)
        let head = text.components(separatedBy: "[[job]]").first ?? text
        try (head + jobs).write(toFile: agent.configPath, atomically: true, encoding: .utf8)
    }

    /// Resident memory of `pid`, in kB.
    static func residentKB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test("reloads do not grow memory: 80 reloads of 500 jobs (each parsed TOML document is freed)")
    func reloadsDoNotLeak() async throws {
        let jobs = (1...500).map { Self.job("m.\($0)", "true", extra: "cron = \"0 \($0 % 60) 3 * * ?\"\ndesc = \"job \($0)\"") }.joined()
        try await AgentProcess.with(jobs: jobs) { agent in
            let pid = agent.process.processIdentifier
            func reload() async throws {
                let answer = try await agent.call("POST", "/api2/agent/reload.do")
                #expect(answer.ret == true, "\(answer.text)")
            }
            for _ in 0..<10 { try await reload() }
            let warm = Self.residentKB(pid)
            for _ in 0..<80 { try await reload() }
            let grown = Self.residentKB(pid) - warm
            // Each reload parses the file three times (the load, and both sides of the
            // restart-key diff); leaked, that was about 1 MB per reload here.
            #expect(warm > 0 && grown < 16_000, "RSS grew by \(grown) kB over 80 reloads (from \(warm) kB)")
        }
    }

    @Test("jobs added, changed and removed live; a removed job's running task finishes, then the job is gone; qagent reload prints what changed")
    func jobsChangeLive() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = Self.job("l.keep", "echo v1 >> \(dir)/keep")
            + Self.job("l.gone", "while [ ! -e \(dir)/release ]; do sleep 0.05; done; echo gone >> \(dir)/gone")
        try await AgentProcess.with(jobs: first) { agent in
            let cli = try agent.cliConfig()
            let running = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.gone"}"#).message)
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(running).do").data?["state"] == .string("running") })
            try Self.rewriteJobs(agent, Self.job("l.keep", "echo v2 >> \(dir)/keep") + Self.job("l.new", "echo new >> \(dir)/new"))
            // The CLI reads the port from its own copy of the config: the reload re-reads the agent's.
            let result = try await AgentProcess.runCLI(["reload", "--config", cli])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output == "reloaded: added l.new; changed l.keep; removed l.gone\n", "\(result.output)")
            // New job: takes work. Changed job: its next task runs the new command.
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.new"}"#).ret == true)
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.keep"}"#).ret == true)
            #expect(await eventually { (try? String(contentsOfFile: "\(dir)/keep", encoding: .utf8)) == "v2\n" })
            #expect(await eventually { (try? String(contentsOfFile: "\(dir)/new", encoding: .utf8)) == "new\n" })
            // Removed job: no new task, the running one still counts for /api/check and finishes.
            let refused = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.gone"}"#)
            #expect(refused.json["reason"] == .string("job_not_found"), "\(refused.text)")
            let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue ?? []
            #expect(busy.contains { $0["name"] == .string("l.gone") }, "\(busy)")
            _ = FileManager.default.createFile(atPath: dir + "/release", contents: nil)
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(running).do").data?["lastState"] == .int(200) })
            #expect((try? String(contentsOfFile: "\(dir)/gone", encoding: .utf8)) == "gone\n")
            let names = try await agent.call("GET", "/api2/jobs.do").data?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(names == ["l.keep", "l.new"])
            #expect(agent.log.contains("job removed by a reload: its last task is over"))
        }
    }

    @Test("an invalid file changes nothing: the error (with its line) is answered and logged; a job name declared twice too")
    func invalidChangesNothing() async throws {
        try await AgentProcess.with(jobs: Self.job("l.a", "true")) { agent in
            try Self.rewriteJobs(agent, Self.job("l.a", "true") + Self.job("l.b", "true", extra: "timeout = -1"))
            var answer = try await agent.call("POST", "/api2/agent/reload.do")
            #expect(answer.ret == false && answer.message == SeedMessage.operationFailed && answer.json["reason"] == .string("config_invalid"))
            let error = answer.json["data"]?["error"]?.stringValue ?? ""
            #expect(error.contains("agent.conf:") && error.contains("timeout"), "\(answer.text)")
            try Self.rewriteJobs(agent, Self.job("l.a", "true") + Self.job("l.b", "true") + Self.job("l.b", "false"))
            answer = try await agent.call("POST", "/api2/agent/reload.do")
            #expect(answer.json["data"]?["error"]?.stringValue?.contains("\"l.b\" is declared twice") == true, "\(answer.text)")
            // Nothing was applied: l.b does not exist, l.a still works.
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.b"}"#).json["reason"] == .string("job_not_found"))
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.a"}"#).ret == true)
            #expect(agent.log.contains("configuration reload failed; nothing changed"))
            // A job with neither command nor handler: refused as a whole too.
            try Self.rewriteJobs(agent, Self.job("l.a", "true") + "[[job]]\nname = \"l.swift\"\n")
            answer = try await agent.call("POST", "/api2/agent/reload.do")
            #expect(answer.json["reason"] == .string("config_invalid") && answer.json["data"]?["error"]?.stringValue?.contains("no Swift handler") == true)
            let cli = try agent.cliConfig()
            let result = try await AgentProcess.runCLI(["reload", "--config", cli])
            #expect(result.status == 1 && result.output.contains("操作失败 (config_invalid)") && result.output.contains("no Swift handler"), "\(result.output)")
        }
    }

    @Test("keys that need a restart are reported and kept: the agent still listens where it did")
    func restartOnlyKeysKept() async throws {
        try await AgentProcess.with(jobs: Self.job("l.a", "true")) { agent in
            var text = try String(contentsOfFile: agent.configPath, encoding: .utf8)
            text = text.replacingOccurrences(of: "max_running = ", with: "max_running = 7\n# was: ")
            text = text.replacingOccurrences(of: "listen = \"127.0.0.1:0\"", with: "listen = \"127.0.0.1:1\"")
            try text.write(toFile: agent.configPath, atomically: true, encoding: .utf8)
            let answer = try await agent.call("POST", "/api2/agent/reload.do")
            #expect(answer.ret == true, "\(answer.text)")
            let kept = answer.json["data"]?["notApplied"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(kept.contains("agent.listen"), "\(answer.text)")
            #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
        }
    }

    @Test("a cron job added by a reload fires without waiting for the old plan")
    func cronAdded() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await AgentProcess.with(jobs: Self.job("l.a", "true", extra: "cron = \"0 0 0 1 1 ? 2099\"")) { agent in
            try Self.rewriteJobs(agent, Self.job("l.a", "true") + Self.job("l.tick", "echo tick >> \(dir)/tick", extra: "cron = \"* * * * * ?\""))
            kill(agent.process.processIdentifier, SIGHUP)
            #expect(await eventually(seconds: 10) { ((try? String(contentsOfFile: "\(dir)/tick", encoding: .utf8)) ?? "").split(separator: "\n").count >= 2 })
        }
    }

    @Test("reloads racing dispatches: every acknowledged task runs once, none is refused while its job stays configured")
    func racingDispatches() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func version(_ n: Int) -> String {
            Self.job("l.busy", "echo $QSCHEDULE_TASK_ID >> \(dir)/runs", extra: "overlap = \"concurrent\"\nmax_concurrency = \(n % 3 + 1)\nmax_queued = 1000")
        }
        try await AgentProcess.with(jobs: version(0)) { agent in
            let load = Task { () -> (acknowledged: [String], other: [String]) in
                var acknowledged: [String] = [], other: [String] = []
                for index in 0..<150 {
                    let reply = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"l.busy","taskId":"race-\#(index)"}"#)
                    if reply.ret == true { acknowledged.append("race-\(index)") } else { other.append(reply.text) }
                }
                return (acknowledged, other)
            }
            for round in 1...10 {
                try Self.rewriteJobs(agent, version(round))
                #expect(try await agent.call("POST", "/api2/agent/reload.do").ret == true)
            }
            let (acknowledged, other) = try await load.value
            #expect(other.isEmpty, "\(other.prefix(3))")
            #expect(await eventually { ((try? String(contentsOfFile: "\(dir)/runs", encoding: .utf8)) ?? "").split(separator: "\n").count >= acknowledged.count })
            let runs = ((try? String(contentsOfFile: "\(dir)/runs", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            #expect(Set(runs) == Set(acknowledged) && runs.count == acknowledged.count, "\(runs.count) runs for \(acknowledged.count) acknowledged")
        }
    }
}
