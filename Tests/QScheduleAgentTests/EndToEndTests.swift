import Foundation
import Testing
@testable import QScheduleAgent

/// The real `qagent` binary, real HTTP on loopback, real child processes, a real SQLite file.
@Suite("End to end", .serialized)
struct EndToEndTests {
    static let jobs = """
        [[job]]
        name = "e2e.sleep"
        command = ["/bin/sleep", "1.5"]
        overlap = "concurrent"
        max_concurrency = 2

        [[job]]
        name = "e2e.fail"
        command = ["/bin/sh", "-c", "echo failing >&2; exit 3"]

        [[job]]
        name = "e2e.missing"
        command = ["/nonexistent/program"]

        [[job]]
        name = "e2e.echo"
        command = ["/bin/sh", "-c", "printf '%s|' \\"$QSCHEDULE_JOB\\" \\"$QSCHEDULE_TASK_ID\\" \\"$QSCHEDULE_PARAM\\"; cat"]

        """

    @Test("a running sleep job is listed by /api/check, and gone when it ends; lastState/lastDuration recorded")
    func checkBusyThenIdle() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { (agent: AgentProcess) async throws in
            #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).text == #"{"data":[],"ret":true}"#)
            let dispatched = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.sleep","param":{}}"#)
            #expect(dispatched.ret == true)
            let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil)
            #expect(busy.data?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["e2e.sleep"])
            #expect(try await eventually(seconds: 15) {
                try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).text == #"{"data":[],"ret":true}"#
            })
            let info = try #require(try await agent.call("GET", "/api2/jobs/e2e.sleep.do").data)
            #expect(info["lastState"] == .int(200))
            let duration = try #require(info["lastDuration"]?.intValue)
            #expect(duration >= 1500)
            // sleep prints nothing: the log holds only its closing line, and reads as complete.
            // A silent success gets no file; its closing line is told from the journal.
            let taskID = try #require(dispatched.message)
            let log = try await agent.call("GET", "/api2/tasks/\(taskID)/log.do")
            #expect(taskOutput(log.data?["text"]?.stringValue) == "")
            #expect(log.data?["text"]?.stringValue == "[qagent] task finished (200) after \(duration) ms: exit code 0\n", "\(log.text)")
            #expect(log.data?["complete"] == .bool(true) && log.data?["size"]?.intValue == Int64(log.data?["text"]?.stringValue?.utf8.count ?? -1))
            #expect(!FileManager.default.fileExists(atPath: agent.dataDir + "/logs/\(taskID).log"))
            let rest = try await agent.call("GET", "/api2/tasks/\(taskID)/log.do?offset=20")
            let whole = Array((log.data?["text"]?.stringValue ?? "").utf8)
            #expect(rest.data?["text"]?.stringValue == String(decoding: whole.dropFirst(20), as: UTF8.self), "\(rest.text)")
        }
    }

    @Test("qagent check exits 0 idle, 1 busy (naming the job), 2 when the agent cannot be asked")
    func checkCLI() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { (agent: AgentProcess) async throws in
            let cliConfig = try agent.cliConfig()

            var result = try await AgentProcess.runCLI(["check", "--config", cliConfig])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("idle"))
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.sleep"}"#).ret == true)
            result = try await AgentProcess.runCLI(["check", "--config", cliConfig, "--ip", "127.0.0.1"])
            #expect(result.status == 1, "\(result.output)")
            #expect(result.output.contains("e2e.sleep"))
            result = try await AgentProcess.runCLI(["check", "--config", cliConfig, "--ip", "203.0.113.9"])
            #expect(result.status == 2, "\(result.output)")
            #expect(result.output.contains("not_this_host"))
            try await agent.stop(signal: SIGKILL)
            result = try await AgentProcess.runCLI(["check", "--config", cliConfig])
            #expect(result.status == 2, "\(result.output)")
        }
    }

    @Test("qagent tasks show|log|kill against the real agent, with script-friendly exit codes")
    func tasksCLI() async throws {
        let jobs = """
            [[job]]
            name = "e2e.talk"
            command = ["/bin/sh", "-c", "echo one; sleep 30"]

            """
        try await AgentProcess.with(jobs: jobs) { (agent: AgentProcess) async throws in
            let cliConfig = try agent.cliConfig()
            let id = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.talk"}"#).message)
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(id)/log.do").data?["size"]?.intValue == 4 })

            var result = try await AgentProcess.runCLI(["tasks", "show", id, "--config", cliConfig])
            #expect(result.status == 0)
            #expect(JSONValue(parsing: result.output)?["state"] == .string("running"), "\(result.output)")
            result = try await AgentProcess.runCLI(["tasks", "log", id, "--config", cliConfig])
            #expect(result.status == 0)
            #expect(result.output == "one\n")
            result = try await AgentProcess.runCLI(["tasks", "kill", id, "--config", cliConfig])
            #expect(result.status == 0, "\(result.output)")
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(499) })
            // -f ends with the task: its log (closing line included), how it ended on stderr, exit 1 (killed).
            result = try await AgentProcess.runCLI(["tasks", "log", id, "--config", cliConfig, "-f"])
            #expect(result.status == 1)
            #expect(result.output.hasPrefix("one\n[qagent] task killed (499) after "), "\(result.output)")
            #expect(result.output.contains("qagent: \(id) killed (499) in "), "\(result.output)")
            result = try await AgentProcess.runCLI(["tasks", "kill", id, "--config", cliConfig])
            #expect(result.status == 1)
            #expect(result.output.contains("task_finished"))
            result = try await AgentProcess.runCLI(["tasks", "show", "no-such-task", "--config", cliConfig])
            #expect(result.status == 1)
        }
    }

    @Test("enable/disable state persists across a restart")
    func enabledStatePersists() async throws {
        let first = try await AgentProcess.start(jobs: Self.jobs)
        defer { first.killNow() }
        let off = try await first.call("POST", "/api2/jobs/off.do", json: #"{"jobs":["e2e.sleep","e2e.fail"]}"#)
        #expect(off.text == #"{"message":"操作成功","ret":true}"#)
        #expect(try await first.stop() == 0)
        let second = try await AgentProcess.start(jobs: Self.jobs, dataDir: first.dataDir)
        defer { second.killNow() }
        defer { try? FileManager.default.removeItem(atPath: first.dataDir) }
        #expect(try await second.call("GET", "/api2/jobs/e2e.sleep.do").data?["state"] == .bool(false))
        #expect(try await second.call("GET", "/api2/jobs/e2e.fail.do").data?["state"] == .bool(false))
        #expect(try await second.call("GET", "/api2/jobs/e2e.echo.do").data?["state"] == .bool(true))
        let refused = try await second.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.sleep"}"#)
        #expect(refused.reason == "job_disabled")
        #expect(try await second.call("POST", "/api2/jobs/on.do", json: #"{"jobs":["e2e.sleep"]}"#).ret == true)
        #expect(try await second.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.sleep"}"#).ret == true)
    }

    @Test("a wrong token changes nothing")
    func wrongToken() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { (agent: AgentProcess) async throws in
            for token in ["wrong", nil] as [String?] {
                #expect(try await agent.call("POST", "/api2/jobs/off.do", token: token, json: #"{"jobs":["e2e.sleep"]}"#).message == "授权失败")
                #expect(try await agent.call("POST", "/api2/tasks.do", token: token, json: #"{"job":"e2e.sleep"}"#).message == "授权失败")
            }
            #expect(try await agent.call("GET", "/api2/jobs/e2e.sleep.do").data?["state"] == .bool(true))
            #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).text == #"{"data":[],"ret":true}"#)
        }
    }

    @Test("malformed JSON, wrong types, missing fields and a 2 MB body get the documented answer; the agent stays healthy")
    func hostileRequests() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { (agent: AgentProcess) async throws in
            let bad: [(String, String)] = [
                ("/api2/tasks.do", "{not json"),
                ("/api2/tasks.do", #"{"job":["e2e.sleep"]}"#),
                ("/api2/tasks.do", #"{"param":{}}"#),
                ("/api2/tasks.do", "\u{FF}\u{FE}garbage"),
                ("/api2/jobs/on.do", #"{"jobs":"e2e.sleep"}"#),
                ("/api2/jobs/off.do", "{}"),
                ("/api2/workers/state.do", #"{"jobName":"e2e.sleep"}"#),
            ]
            for (path, body) in bad {
                let reply = try await agent.call("POST", path, json: body)
                #expect(reply.status == .ok)
                #expect(reply.text == #"{"message":"参数错误","ret":false}"#, "\(path) \(body)")
            }
            let invalidUTF8 = Data([0x7B, 0x22, 0x6A, 0x6F, 0x62, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D])
            #expect(try await agent.call("POST", "/api2/tasks.do", body: invalidUTF8).message == "参数错误")

            let twoMB = Data(#"{"job":"e2e.echo","param":{"blob":""#.utf8) + Data(repeating: UInt8(ascii: "a"), count: 2 << 20) + Data(#""}}"#.utf8)
            let tooLarge = try await agent.call("POST", "/api2/tasks.do", body: twoMB)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.text == #"{"message":"参数错误","reason":"body_too_large","ret":false}"#)

            #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
            #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).text == #"{"data":[],"ret":true}"#)
            #expect(agent.process.isRunning)
        }
    }

    @Test("command handlers: param on stdin and in the environment, exit code to 200/500, a missing program a clear 500")
    func commandHandlers() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { (agent: AgentProcess) async throws in
            let echo = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.echo","param":{"name":"华","n":1}}"#).message)
            let fail = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.fail","param":{}}"#).message)
            let missing = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e2e.missing","param":{}}"#).message)
            #expect(try await eventually(seconds: 15) {
                try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true
            })
            let echoLog = try String(contentsOfFile: agent.dataDir + "/logs/\(echo).log", encoding: .utf8)
            #expect(echoLog.hasPrefix(#"e2e.echo|\#(echo)|{"n":1,"name":"华"}|{"n":1,"name":"华"}"# + "\n[qagent] task finished (200) after "), "\(echoLog)")
            #expect(try await agent.call("GET", "/api2/jobs/e2e.echo.do").data?["lastState"] == .int(200))

            #expect(try await agent.call("GET", "/api2/jobs/e2e.fail.do").data?["lastState"] == .int(500))
            let failLog = try String(contentsOfFile: agent.dataDir + "/logs/\(fail).log", encoding: .utf8)
            #expect(taskOutput(failLog) == "failing\n")
            #expect(closingLine(failLog)?.hasPrefix("[qagent] task failed (500) after ") == true, "\(failLog)")
            #expect(try await agent.call("GET", "/api2/jobs/e2e.missing.do").data?["lastState"] == .int(500))

            try await agent.stop()
            let store = try AgentStore(dataDirectory: agent.dataDir)
            #expect(try store.task(fail)?.exitCode == 3)
            #expect(try store.task(fail)?.message == "exit code 3")
            let missingMessage = try #require(try store.task(missing)?.message)
            #expect(missingMessage.hasPrefix("cannot start /nonexistent/program"), "\(missingMessage)")
        }
    }
}

@Suite("End to end: cron")
struct EndToEndCronTests {
    @Test("a */2 * * * * ? job fires two seconds apart, through the real binary")
    func everyTwoSeconds() async throws {
        let jobs = """
            [[job]]
            name = "e2e.tick"
            cron = "*/2 * * * * ?"
            command = ["/bin/true"]

            """
        try await AgentProcess.with(jobs: jobs) { (agent: AgentProcess) async throws in
            try await Task.sleep(for: .seconds(7))
            #expect(try await agent.stop() == 0)
            let tasks = try AgentStore(dataDirectory: agent.dataDir).tasks(job: "e2e.tick")
            let scheduled = tasks.compactMap(\.scheduledAt)
            #expect(scheduled.count >= 3, "\(scheduled)")
            for (earlier, later) in zip(scheduled, scheduled.dropFirst()) { #expect(later - earlier == 2000) }
            #expect(scheduled.allSatisfy { $0 % 2000 == 0 })
            for task in tasks {
                #expect(task.result == .succeeded)
                // Never early. How late is a matter of load: Benchmarks/cron.sh measures it.
                #expect(task.startTime! >= task.scheduledAt!, "fired early: \(task)")
            }
        }
    }
}
