import Foundation
import Testing
@testable import QScheduleAgent

/// `retries` and `retry_backoff` per job, against the real binary: a failure (500) or a
/// timeout (504) runs again as attempt + 1 after a doubling backoff; a kill (499) never; the
/// task stays active meanwhile; info, logs and metrics show the retries.
@Suite("Retries on failure")
struct RetryTests {
    static func jobs(_ dir: String) -> String {
        """
        [[job]]
        name = "r.flaky"
        retries = 2
        retry_backoff = 1
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT >> \(dir)/flaky; echo attempt $QSCHEDULE_ATTEMPT; [ $QSCHEDULE_ATTEMPT -ge 2 ]"]

        [[job]]
        name = "r.broken"
        retries = 2
        retry_backoff = 1
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT $(date +%s%3N) >> \(dir)/broken; exit 3"]

        [[job]]
        name = "r.slow"
        retries = 1
        retry_backoff = 0
        timeout = 1
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT >> \(dir)/slow; sleep 30"]

        [[job]]
        name = "r.wait"
        retries = 3
        retry_backoff = 60
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT >> \(dir)/wait; exit 1"]

        [[job]]
        name = "r.hang"
        retries = 3
        retry_backoff = 0
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT >> \(dir)/hang; sleep 30"]

        [[job]]
        name = "r.none"
        command = ["/bin/sh", "-c", "echo run $QSCHEDULE_ATTEMPT >> \(dir)/none; exit 1"]

        """
    }

    static func runs(_ dir: String, _ name: String) -> [String] {
        ((try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test("a failing task runs again as attempt + 1 after a doubling backoff, up to retries; a success ends it; a timeout is retried; without retries nothing runs again")
    func retried() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await AgentProcess.with(jobs: Self.jobs(dir), agentExtra: "log_format = \"json\"\nkill_grace = 1") { agent in
            var dispatched: [String: String] = [:]
            for job in ["r.flaky", "r.broken", "r.slow", "r.none"] {
                dispatched[job] = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#).message)
            }
            let ids = dispatched
            @Sendable func info(_ job: String) async throws -> JSONValue? { try await agent.call("GET", "/api2/tasks/\(ids[job]!).do").data }
            // Between attempts the task is queued, with the retry in its message, and keeps the host busy.
            #expect(await eventually { Self.runs(dir, "broken").count >= 1 })
            let between = try #require(try await info("r.broken"))
            if between["state"] == .string("queued"), let attempt = between["attempt"]?.intValue {
                #expect(attempt == 2 || attempt == 3)
                #expect(between["message"] == .string("retry \(attempt - 1) of 2 after: exit code 3"))
                let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue ?? []
                // Still not finished after the check: it was active during it (its last attempt may
                // have run and ended in between on a slow machine; then there is nothing to see).
                if try await info("r.broken")?["state"] != .string("finished") {
                    #expect(busy.contains { $0["name"] == .string("r.broken") }, "\(busy)")
                }
            }
            #expect(try await eventually(seconds: 60) {
                try await ["r.flaky", "r.broken", "r.slow", "r.none"].asyncAllSatisfy { try await info($0)?["state"] == .string("finished") }
            })
            // Flaky: failed once, succeeded as attempt 2.
            #expect(Self.runs(dir, "flaky") == ["run 1", "run 2"])
            let flaky = try #require(try await info("r.flaky"))
            #expect(flaky["lastState"] == .int(200) && flaky["attempt"] == .int(2))
            // Broken: 1 + 2 retries, then 500 for good, the waits doubling (1 s, then 2 s).
            let broken = Self.runs(dir, "broken")
            #expect(broken.map { $0.split(separator: " ")[1] } == ["1", "2", "3"])
            let times = broken.compactMap { Int64($0.split(separator: " ")[2]) }
            if times.count == 3 {
                #expect(times[1] - times[0] >= 1_000, "\(times)")
                #expect(times[2] - times[1] >= 2_000, "\(times)")
            }
            let final = try #require(try await info("r.broken"))
            #expect(final["lastState"] == .int(500) && final["attempt"] == .int(3))
            #expect(final["message"] == .string("exit code 3"))
            // Slow: timed out (504), retried once, timed out again.
            #expect(Self.runs(dir, "slow") == ["run 1", "run 2"])
            #expect(try await info("r.slow")?["lastState"] == .int(504))
            // No retries configured: one run.
            #expect(Self.runs(dir, "none") == ["run 1"])
            // The log keeps every attempt, each with its closing line; the last one says how it ended.
            let log = try await agent.call("GET", "/api2/tasks/\(ids["r.flaky"]!)/log.do").json["data"]?["text"]?.stringValue ?? ""
            let lines = log.split(separator: "\n").map(String.init)
            #expect(lines.count == 5, "\(log)")
            if lines.count == 5 {
                #expect(lines[0] == "attempt 1")
                #expect(lines[1].hasPrefix("[qagent] task failed (500) after ") && lines[1].hasSuffix(": exit code 1; retried as attempt 2 in 1000 ms"), "\(lines[1])")
                #expect(lines[2] == "[qagent] attempt 2 starts")
                #expect(lines[3] == "attempt 2")
                #expect(lines[4].hasPrefix("[qagent] task finished (200) after "))
            }
            // Logged and counted.
            let retried = ObservabilityTests.jsonLines(agent.log).filter { $0["msg"] == .string("task retried") }
            #expect(retried.filter { $0["job"] == .string("r.broken") }.map { $0["attempt"] } == [.int(2), .int(3)])
            #expect(retried.filter { $0["job"] == .string("r.broken") }.map { $0["backoff_ms"] } == [.int(1_000), .int(2_000)])
            let metrics = try await agent.call("GET", "/metrics", token: nil).text
            #expect(metrics.contains(#"qagent_task_retries_total{job="r.broken"} 2"#), "\(metrics)")
            #expect(metrics.contains(#"qagent_tasks_finished_total{job="r.broken",state="failed"} 1"#))
        }
    }

    @Test("a task killed during its retry backoff ends 499 and never runs again; a task killed while running is not retried")
    func killedNotRetried() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await AgentProcess.with(jobs: Self.jobs(dir), agentExtra: "kill_grace = 1") { agent in
            let id = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"r.wait"}"#).message)
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(id).do").data?["attempt"] == .int(2) })
            #expect(try await agent.call("GET", "/api2/tasks/\(id).do").data?["state"] == .string("queued"))
            // During its 60 s backoff the task keeps the host busy for a deploy's check.
            let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue ?? []
            #expect(busy.map { $0["name"] } == [.string("r.wait")], "\(busy)")
            #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).ret == true)
            let info = try #require(try await agent.call("GET", "/api2/tasks/\(id).do").data)
            #expect(info["state"] == .string("finished") && info["lastState"] == .int(499), "\(info)")
            #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true)
            #expect(Self.runs(dir, "wait") == ["run 1"])

            // No timeout here: only the kill ends it (retries = 3, no backoff: a retry would show at once).
            let sleeper = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"r.hang"}"#).message)
            #expect(await eventually { Self.runs(dir, "hang").count == 1 })
            #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(sleeper)"}"#).ret == true)
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(sleeper).do").data?["lastState"] == .int(499) })
            try await Task.sleep(for: .milliseconds(500))
            #expect(Self.runs(dir, "hang") == ["run 1"])
        }
    }

    @Test("retries and retry_backoff: out-of-range values are refused with file and line")
    func badConfig() throws {
        for (line, problem) in [("retries = -1", "retries"), ("retries = 101", "retries"), ("retry_backoff = 3601", "retry_backoff")] {
            let text = "[agent]\ntoken = \"\(testToken)\"\n\n[[job]]\nname = \"j\"\ncommand = [\"/bin/true\"]\n\(line)\n"
            #expect(throws: ConfigError.self) { try ConfigLoader.parse(text, fileName: "agent.conf", baseDirectory: "/tmp") }
            do {
                _ = try ConfigLoader.parse(text, fileName: "agent.conf", baseDirectory: "/tmp")
            } catch {
                #expect("\(error)".contains("agent.conf:7") && "\(error)".contains(problem), "\(error)")
            }
        }
        let job = try ConfigLoader.parse(
            "[agent]\ntoken = \"\(testToken)\"\n[[job]]\nname = \"j\"\ncommand = [\"/bin/true\"]\nretries = 4\nretry_backoff = 1000\n",
            fileName: "agent.conf", baseDirectory: "/tmp").jobs[0]
        #expect([1, 2, 3, 4].map { job.backoff(beforeRetry: $0) } == [.seconds(1000), .seconds(2000), .seconds(3600), .seconds(3600)])
    }
}

extension Array where Element: Sendable {
    func asyncAllSatisfy(_ predicate: (Element) async throws -> Bool) async rethrows -> Bool {
        for element in self where try await !predicate(element) { return false }
        return true
    }
}
