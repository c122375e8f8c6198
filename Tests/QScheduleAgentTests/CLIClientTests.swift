import Foundation
import Testing
@testable import QScheduleAgent

/// The CLI's client commands, run as the real binary against a real agent (and fakes of
/// what cannot run here: a central scheduler, broken servers).
@Suite("CLI client commands")
struct CLIClientTests {
    static let jobs = """
        [[job]]
        name = "cli.echo"
        command = ["/bin/sh", "-c", "cat"]

        [[job]]
        name = "cli.other"
        command = ["/bin/true"]
        """

    @Test("trigger --wait prints the final state and exits 0 on 200, 1 on any other end, 2 when the wait times out or the arguments are wrong; --json prints the task")
    func triggerWait() async throws {
        let jobs = """
            [[job]]
            name = "w.ok"
            command = ["/bin/sh", "-c", "sleep 0.3; echo done"]

            [[job]]
            name = "w.fail"
            command = ["/bin/sh", "-c", "exit 7"]

            [[job]]
            name = "w.slow"
            timeout = 1
            command = ["/bin/sleep", "30"]

            [[job]]
            name = "w.long"
            overlap = "concurrent"
            max_concurrency = 4
            command = ["/bin/sleep", "30"]

            """
        try await AgentProcess.with(jobs: jobs, agentExtra: "kill_grace = 1") { agent in
            let cli = try agent.cliConfig()
            var result = try await AgentProcess.runCLI(["trigger", "w.ok", "--wait", "--config", cli])
            #expect(result.status == 0, "\(result.output)")
            var lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.count == 2 && Identifier.isTaskID(lines[0]), "\(result.output)")
            #expect(lines.last?.hasPrefix("\(lines[0]) succeeded (200) in ") == true && lines.last?.hasSuffix(" ms: exit code 0") == true, "\(result.output)")
            result = try await AgentProcess.runCLI(["trigger", "w.fail", "--wait", "--config", cli])
            #expect(result.status == 1)
            #expect(result.output.contains(" failed (500) in ") && result.output.hasSuffix(": exit code 7\n"), "\(result.output)")
            result = try await AgentProcess.runCLI(["trigger", "w.slow", "--wait", "--timeout", "1m", "--config", cli])
            #expect(result.status == 1)
            #expect(result.output.contains(" timed out (504) in "), "\(result.output)")
            // The wait gives up (exit 2); the task keeps running.
            result = try await AgentProcess.runCLI(["trigger", "w.long", "--wait", "--timeout", "1", "--config", cli])
            #expect(result.status == 2)
            lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.last == "qagent: task \(lines[0]) has not finished after 1; it keeps running (qagent tasks show \(lines[0]))", "\(result.output)")
            #expect(try await agent.call("GET", "/api2/tasks/\(lines[0]).do").data?["state"] == .string("running"))
            // Killed while waited for: exit 1.
            let waiting = Task { try await AgentProcess.runCLI(["trigger", "w.long", "--task-id", "w-kill", "--wait", "--config", cli]) }
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/w-kill.do").data?["state"] == .string("running") })
            #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"w-kill"}"#).ret == true)
            result = try await waiting.value
            #expect(result.status == 1 && result.output.contains("w-kill killed (499)"), "\(result.output)")
            // --json: the task id's envelope, then the final task.
            result = try await AgentProcess.runCLI(["trigger", "w.fail", "--wait", "--json", "--config", cli])
            #expect(result.status == 1)
            lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.count == 2 && JSONValue(parsing: lines[1])?["lastState"] == .int(500), "\(result.output)")
            // Refused dispatch: 1; bad arguments: 2, nothing dispatched.
            result = try await AgentProcess.runCLI(["trigger", "w.nope", "--wait", "--config", cli])
            #expect(result.status == 1 && result.output == "qagent: 重试失败 (job_not_found)\n")
            result = try await AgentProcess.runCLI(["trigger", "w.ok", "--wait", "--timeout", "soon", "--config", cli])
            #expect(result.status == 2 && result.output == "qagent: --timeout must look like 90, 90s, 10m or 1h, got \"soon\"\n")
            result = try await AgentProcess.runCLI(["trigger", "w.ok", "--timeout", "1m", "--config", cli])
            #expect(result.status == 2 && result.output == "qagent: --timeout applies to --wait\n")
        }
    }

    @Test("without --config: ./agent.conf, else /etc/qagent/agent.conf; when neither exists the error names both (exit 2)")
    func configFallback() async throws {
        // The tests run from the package root, which has agent.conf.example but no agent.conf.
        guard !FileManager.default.fileExists(atPath: "agent.conf"), !FileManager.default.fileExists(atPath: "/etc/qagent/agent.conf") else { return }
        let missing = "qagent: no configuration file: neither ./agent.conf nor /etc/qagent/agent.conf exists; pass --config FILE\n"
        for arguments in [["jobs", "list"], ["config", "check"], ["reload"]] {
            let result = try await AgentProcess.runCLI(arguments)
            #expect(result.status == 2 && result.output == missing, "\(arguments): \(result.output)")
        }
        let run = try await AgentProcess.runCLI(["run"])
        #expect(run.status == 2 && run.output == missing, "\(run.output)")
    }

    @Test("jobs on|off|info, trigger with params, workers list|set, status: output and exit codes")
    func localCommands() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            let cli = try agent.cliConfig()
            var result = try await AgentProcess.runCLI(["jobs", "off", "cli.echo", "--config", cli])
            #expect(result.status == 0 && result.output == "操作成功\n")
            result = try await AgentProcess.runCLI(["trigger", "cli.echo", "--config", cli])
            #expect(result.status == 1)
            #expect(result.output == "qagent: 重试失败 (job_disabled)\n")
            result = try await AgentProcess.runCLI(["jobs", "on", "cli.echo", "nope", "--config", cli])
            #expect(result.status == 1 && result.output == "qagent: 启用失败 (job_not_found)\n")
            result = try await AgentProcess.runCLI(["jobs", "on", "cli.echo", "--config", cli])
            #expect(result.status == 0)

            result = try await AgentProcess.runCLI([
                "trigger", "cli.echo", "--param", "day=2026-11-24", "--param", "note=a=b",
                "--param-json", #"{"count":3,"day":"old"}"#, "--config", cli,
            ])
            #expect(result.status == 0)
            let id = result.output.trimmingCharacters(in: .newlines)
            #expect(Identifier.isTaskID(id))
            #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"]?.intValue == 200 })
            let log = try await AgentProcess.runCLI(["tasks", "log", id, "--config", cli])
            #expect(JSONValue(parsing: taskOutput(log.output) ?? "") == .object(["count": .int(3), "day": .string("2026-11-24"), "note": .string("a=b")]))

            result = try await AgentProcess.runCLI(["trigger", "cli.echo", "--param-json", "[1]", "--config", cli])
            #expect(result.status == 2 && result.output.contains("--param-json must be a JSON object"))
            result = try await AgentProcess.runCLI(["trigger", "cli.echo", "--param", "novalue", "--config", cli])
            #expect(result.status == 2 && result.output.contains("key=value"))

            result = try await AgentProcess.runCLI(["jobs", "info", "cli.echo", "--config", cli])
            #expect(result.status == 0)
            #expect(result.output.contains("name          cli.echo"))
            #expect(result.output.contains("lastState     200"))
            result = try await AgentProcess.runCLI(["jobs", "info", "cli.echo", "--json", "--config", cli])
            let envelope = try #require(JSONValue(parsing: result.output))
            #expect(envelope["ret"]?.boolValue == true && envelope["data"]?["name"]?.stringValue == "cli.echo")
            result = try await AgentProcess.runCLI(["jobs", "info", "no.such", "--json", "--config", cli])
            #expect(result.status == 1 && JSONValue(parsing: result.output)?["message"]?.stringValue == "job不存在")

            let me = "127.0.0.1:\(agent.port)"
            result = try await AgentProcess.runCLI(["workers", "list", "cli.echo", "--config", cli])
            #expect(result.status == 0 && result.output == "\(me)\tonline\t\(me)\n")
            result = try await AgentProcess.runCLI(["workers", "set", "cli.echo", "\(me)=off", "--config", cli])
            #expect(result.status == 1 && result.output == "qagent: 所有机器不能全部下线\n")
            result = try await AgentProcess.runCLI(["workers", "set", "cli.echo", "10.1.1.1:1=on", "--config", cli])
            #expect(result.status == 1 && result.output.contains("可能存在未操作成功的机器,请调用查看接口验证"))
            result = try await AgentProcess.runCLI(["workers", "set", "cli.echo", "\(me)=maybe", "--config", cli])
            #expect(result.status == 2)

            result = try await AgentProcess.runCLI(["status", "--config", cli])
            #expect(result.status == 0 && result.output.contains("state        taking work"))
            result = try await AgentProcess.runCLI(["status", "--json", "--config", cli])
            #expect(JSONValue(parsing: result.output)?["data"]?["address"]?.stringValue == me)
        }
    }

    @Test("jobs list and tasks list: aligned tables, --json, filters, paging hint, bad options exit 1")
    func listing() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            let cli = try agent.cliConfig()
            var result = try await AgentProcess.runCLI(["jobs", "list", "--config", cli])
            var lines = result.output.split(separator: "\n").map(String.init)
            #expect(result.status == 0 && lines.count == 3, "\(result.output)")
            #expect(lines.first?.hasPrefix("NAME       STATE  CRON  LAST RUN  LAST STATE  DURATION  NEXT RUN") == true, "\(result.output)")
            #expect(lines.dropFirst().map { $0.prefix(18) } == ["cli.echo   on     ", "cli.other  on     "], "\(lines)")
            var ids: [String] = []
            for _ in 0..<3 {
                let triggered = try await AgentProcess.runCLI(["trigger", "cli.other", "--config", cli])
                ids.append(triggered.output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            #expect(await eventually { (try? await agent.call("GET", "/api2/tasks.do?state=finished").json["data"]?["tasks"]?.arrayValue?.count) == 3 })
            result = try await AgentProcess.runCLI(["tasks", "list", "--job", "cli.other", "--limit", "2", "--config", cli])
            lines = result.output.split(separator: "\n").map(String.init)
            #expect(result.status == 0 && lines.count == 4, "\(result.output)")
            #expect(lines[0].hasPrefix("TASK") && lines[0].contains("JOB") && lines[0].contains("RESULT"))
            #expect(lines[1].hasPrefix(ids[2]) && lines[1].contains("finished") && lines[1].contains("200"), "\(lines)")
            #expect(lines[3].hasPrefix("more: --before "))
            let next = String(lines[3].dropFirst("more: --before ".count))
            result = try await AgentProcess.runCLI(["tasks", "list", "--before", next, "--json", "--config", cli])
            #expect(JSONValue(parsing: result.output)?["data"]?["tasks"]?.arrayValue?.compactMap { $0["taskId"]?.stringValue } == [ids[0]])
            result = try await AgentProcess.runCLI(["tasks", "list", "--state", "done", "--config", cli])
            #expect(result.status == 1 && result.output == "qagent: 参数错误\n")
        }
    }

    @Test("--server and --token: any agent by URL; a wrong token is refused (exit 1)")
    func remoteServer() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            var result = try await AgentProcess.runCLI(["status", "--server", agent.baseURL, "--token", "test-token-0000002", "--config", "/nonexistent"])
            #expect(result.status == 0 && result.output.contains("127.0.0.1:\(agent.port)"))
            result = try await AgentProcess.runCLI(["jobs", "off", "cli.other", "--server", agent.baseURL, "--token", "wrong", "--config", "/nonexistent"])
            #expect(result.status == 1 && result.output == "qagent: 授权失败\n")
            #expect(try await agent.call("GET", "/api2/jobs/cli.other.do").data?["state"]?.boolValue == true)
            result = try await AgentProcess.runCLI(["status", "--server", agent.baseURL, "--config", "/nonexistent"])
            #expect(result.status == 2 && result.output.contains("--server needs a token"))
            result = try await AgentProcess.runCLI(["status", "--server", "ftp://x", "--token", "t"])
            #expect(result.status == 2 && result.output.contains("--server must be an http"))
        }
    }

    @Test("refused connection, timeout, and an answer that is not JSON: exit 2 with a clear error")
    func transportErrors() async throws {
        let fake = try await FakeUpstream.start()
        defer { Task { await fake.stop() } }
        let down = "http://127.0.0.1:\(try await FakeUpstream.downPort())"

        var result = try await AgentProcess.runCLI(["status", "--server", down, "--token", "t"])
        #expect(result.status == 2)
        #expect(result.output == "qagent: connection refused by \(down)/api2/agent/status.do\n")

        result = try await AgentProcess.runCLI(["status", "--server", fake.baseURL + "/slow", "--token", "t", "--request-timeout", "0.5"])
        #expect(result.status == 2)
        #expect(result.output == "qagent: no answer from \(fake.baseURL)/slow/api2/agent/status.do in time\n")

        result = try await AgentProcess.runCLI(["status", "--server", fake.baseURL + "/nothing-here", "--token", "t"])
        #expect(result.status == 2)
        #expect(result.output.contains("answered HTTP 404 without a seed envelope"))
    }

    @Test("drain with a central scheduler: 所有机器不能全部下线 shown, exit 1, not drained; --force-local drains")
    func drainWithCentral() async throws {
        let central = try await FakeUpstream.start()
        defer { Task { await central.stop() } }
        central.state.workersAnswer.withLock { $0["cli.other"] = SeedMessage.allWorkersOffline }
        let jobs = "[scheduler]\nurl = \"\(central.baseURL)\"\n\n" + Self.jobs
        try await AgentProcess.with(jobs: jobs) { agent in
            let cli = try agent.cliConfig()
            var result = try await AgentProcess.runCLI(["drain", "--config", cli])
            #expect(result.status == 1)
            #expect(result.output.contains("qagent: 所有机器不能全部下线 (last_worker)"))
            #expect(result.output.contains("central scheduler: cli.other: last_worker"))
            #expect(result.output.contains("--force-local"))
            #expect(try await agent.call("GET", "/api2/agent/status.do").data?["draining"]?.boolValue == false)

            result = try await AgentProcess.runCLI(["drain", "--force-local", "--config", cli])
            #expect(result.status == 0)
            #expect(result.output.contains("draining\n"))
            #expect(try await agent.call("GET", "/api2/agent/status.do").data?["draining"]?.boolValue == true)
        }
    }

    @Test("a drain told the central scheduler: the next start tells it the host is back")
    func restartBringsHostBack() async throws {
        let central = try await FakeUpstream.start()
        defer { Task { await central.stop() } }
        let jobs = "[scheduler]\nurl = \"\(central.baseURL)\"\n\n" + Self.jobs
        let first = try await AgentProcess.start(jobs: jobs)
        #expect(try await first.call("POST", "/api2/agent/drain.do", json: "{}").ret == true)
        #expect(try await first.stop() == 0)
        let offline = #"{"127.0.0.1:\#(first.port)":false}"#
        #expect(central.state.workerCalls.allSatisfy { $0.workers == offline })

        let second = try await AgentProcess.start(jobs: jobs, dataDir: first.dataDir)
        let online = #"{"127.0.0.1:\#(second.port)":true}"#
        #expect(await eventually { central.state.workerCalls.filter { $0.workers == online }.count == 2 })
        #expect(try await eventually { try await second.call("GET", "/api2/agent/status.do").data?["central"]?["toldOffline"]?.boolValue == false })
        _ = try await second.stop()
    }
}
