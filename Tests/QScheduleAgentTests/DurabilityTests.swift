import Foundation
import Testing
@testable import QScheduleAgent

/// Drain, recovery and store faults (DESIGN §4-§5), in-process with the real store and processes.
@Suite("Drain, recovery and store faults")
struct DurabilityTests {
    static let jobs = """
        [[job]]
        name = "d.sleep"
        command = ["/bin/sleep", "30"]
        overlap = "concurrent"
        max_concurrency = 4

        [[job]]
        name = "d.quick"
        command = ["/bin/true"]
        overlap = "concurrent"
        max_concurrency = 8
        max_queued = 1000

        """

    @Test("drain.do stops intake, keeps reads and running tasks; resume.do undoes it; status and readyz tell")
    func drainResume() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { agent in
            let running = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"d.sleep"}"#).message)
            #expect(try await agent.call(.post, "/api2/agent/drain.do", token: "bad").message == "授权失败")
            for body in [#"{"forceLocal":"yes"}"#, #"{"forceLocal":1}"#, #"{"forceLocal":null}"#, "[]", #""x""#] {
                #expect(try await agent.call(.post, "/api2/agent/drain.do", body: body).text == #"{"message":"参数错误","ret":false}"#, "\(body)")
            }
            #expect(await agent.agent.runner.isDraining == false, "a refused drain drained")
            #expect(try await agent.call(.post, "/api2/agent/drain.do").text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await agent.call(.post, "/api2/agent/drain.do").ret == true)  // idempotent
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"d.quick"}"#).reason == "draining")
            #expect(try await agent.call(.get, "/readyz", token: nil).status == .serviceUnavailable)
            #expect(try await agent.call(.get, "/healthz", token: nil).status == .ok)
            let status = try #require(try await agent.call(.get, "/api2/agent/status.do").data)
            #expect(status["draining"] == .bool(true))
            #expect(status["drainingSince"]?.intValue != nil)
            #expect(status["runningTasks"] == .array([.string(running)]))
            #expect(try await agent.call(.get, "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.count == 1)
            #expect(try await eventually { try agent.agent.store.task(running)?.status == .running })

            #expect(try await agent.call(.post, "/api2/agent/resume.do").text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await agent.call(.get, "/readyz", token: nil).status == .ok)
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"d.quick"}"#).ret == true)
            #expect(try await agent.call(.get, "/api2/agent/status.do").data?["drainingSince"] == nil)

            await agent.agent.runner.beginShutdown()
            #expect(try await agent.call(.post, "/api2/agent/resume.do").text == #"{"message":"操作失败","reason":"shutting_down","ret":false}"#)
        }
    }

    @Test("concurrent dispatches share durable transactions (group commit)")
    func groupCommit() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { agent in
            let before = agent.agent.store.journalStatistics
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<200 {
                    group.addTask { try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"d.quick"}"#).ret == true }
                }
                for try await accepted in group { #expect(accepted) }
            }
            let after = agent.agent.store.journalStatistics
            let transactions = after.transactions - before.transactions
            let writes = after.writes - before.writes
            print("group commit: \(writes) journal writes in \(transactions) transactions")
            #expect(writes >= 200)
            #expect(transactions < writes)
        }
    }

    /// Starts `sleep 1000` as a process-group leader (pid == pgid, like a command's leader),
    /// with the given environment, detached from the test's own stdout.
    static func startSleeper(environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import os\nif os.getpgrp() != os.getpid(): os.setsid()\nos.execv('/bin/sleep', ['sleep', '1000'])"]
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static let recoveryJobs = """
        [[job]]
        name = "r.retry"
        command = ["/bin/sh", "-c", "echo attempt $QSCHEDULE_ATTEMPT"]
        recover = "retry"
        max_attempts = 3

        [[job]]
        name = "r.discard"
        command = ["/bin/true"]
        recover = "discard"

        """

    @Test("restart after a crash: leftovers are killed (verified pid), then retry runs again as attempt + 1 and discard is 503")
    func recovery() async throws {
        let oldInstance = UUID().uuidString
        // The recorded leader of t-running: no markers, so only the pid + start-time check can find it.
        let leftover = try Self.startSleeper()
        // A descendant of t-running that left its group: found by its environment markers.
        let escapee = try Self.startSleeper(environment: ["QSCHEDULE_TASK_ID": "t-running", "QSCHEDULE_AGENT_INSTANCE": oldInstance])
        // Recorded for t-recycled with another start time: a recycled pid, never touched.
        let bystander = try Self.startSleeper()
        defer { for process in [leftover, escapee, bystander] { kill(process.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .milliseconds(300))
        let leftoverTicks = ProcessIdentity.startTicks(of: leftover.processIdentifier)
        #expect(leftoverTicks != nil)
        #expect(getpgid(leftover.processIdentifier) == leftover.processIdentifier)
        try await InProcessAgent.with(jobs: Self.recoveryJobs, agentExtra: "kill_grace = 1", prepare: { dir in
            let store = try AgentStore(dataDirectory: dir)
            func insert(_ id: String, _ job: String, attempt: Int = 1) async throws {
                try await store.insertTask(TaskRecord(id: id, job: job, param: "{}", trigger: .dispatch, acceptedAt: 1000, attempt: attempt))
            }
            try await insert("t-running", "r.retry")
            try await store.markRunning("t-running", attempt: 1, startTime: 2000)
            store.recordProcessSoon("t-running", process: ProcessIdentity(pid: leftover.processIdentifier, startTicks: leftoverTicks, instance: oldInstance))
            try await insert("t-queued", "r.retry")
            try await insert("t-exhausted", "r.retry", attempt: 3)
            try await store.markRunning("t-exhausted", attempt: 3, startTime: 2000)
            try await insert("t-discard", "r.discard")
            try await store.markRunning("t-discard", attempt: 1, startTime: 2000)
            // A recorded pid whose start time does not match: a recycled pid, never touched.
            try await insert("t-recycled", "r.discard")
            try await store.markRunning("t-recycled", attempt: 1, startTime: 2000)
            store.recordProcessSoon("t-recycled", process: ProcessIdentity(pid: bystander.processIdentifier, startTicks: 1, instance: "not-this"))
            try await insert("t-gone-job", "r.removed")
            try await Task.sleep(for: .milliseconds(100))
            try store.close()
        }) { agent in
            let store = agent.agent.store
            #expect(try await eventually(seconds: 10) { try store.unfinishedTasks().isEmpty })
            #expect(await eventually(seconds: 5) { !leftover.isRunning })
            #expect(await eventually(seconds: 5) { !escapee.isRunning })
            #expect(bystander.isRunning)

            let rerun = try #require(try store.task("t-running"))
            #expect(rerun.result == .succeeded)
            #expect(rerun.attempt == 2)
            #expect(taskOutput(try await agent.call(.get, "/api2/tasks/t-running/log.do").data?["text"]?.stringValue) == "attempt 2\n")
            let queued = try #require(try store.task("t-queued"))
            #expect(queued.result == .succeeded)
            #expect(queued.attempt == 1)
            let exhausted = try #require(try store.task("t-exhausted"))
            #expect(exhausted.result == .lost)
            #expect(exhausted.message == "lost: not run again, max_attempts (3) reached")
            let discarded = try #require(try store.task("t-discard"))
            #expect(discarded.result == .lost)
            #expect(discarded.message == "lost: the agent stopped while it ran")
            #expect(try store.task("t-gone-job")?.result == .lost)
            #expect(try await agent.call(.get, "/api2/jobs/r.discard.do").data?["lastState"] == .int(503))
        }
    }

    @Test("a second agent on the same data_dir is refused; a corrupted database is a clear start-up error")
    func startupRefusals() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir) + "[[job]]\nname = \"j\"\ncommand = [\"/bin/true\"]\n", baseDirectory: dir)
        let first = try Agent(config: config)
        do {
            _ = try Agent(config: config)
            Issue.record("a second agent started on the same data_dir")
        } catch {
            #expect("\(error)".contains("is in use by another qagent (pid \(getpid()))"), "\(error)")
        }
        _ = first

        let broken = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: broken) }
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: broken + "/qagent.sqlite"))
        let brokenConfig = try ConfigLoader.parse(agentTOML(dataDir: broken), baseDirectory: broken)
        do {
            _ = try Agent(config: brokenConfig)
            Issue.record("a corrupted database was accepted")
        } catch {
            #expect("\(error)".hasPrefix("cannot open the store in data_dir \"\(broken)\""), "\(error)")
            #expect("\(error)".contains("not a database"), "\(error)")
        }
    }

    static func canMountTmpfs() -> Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount")
    }

    /// Runs `body` with a fresh 4 MiB tmpfs mounted at a temporary folder, unmounted after.
    static func withTmpfs(_ body: (String) async throws -> Void) async throws {
        let mountPoint = try makeTemporaryDirectory()
        defer { _ = try? shell("umount '\(mountPoint)'"); try? FileManager.default.removeItem(atPath: mountPoint) }
        guard try shell("mount -t tmpfs -o size=4m tmpfs '\(mountPoint)'") == 0 else {
            Issue.record("mount failed")
            return
        }
        try await body(mountPoint)
    }

    static func shell(_ command: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test("disk full: new work gets 内部错误, reads keep answering, acknowledged tasks stay; work resumes when space returns",
          .enabled(if: canMountTmpfs(), "needs root to mount a small tmpfs"))
    func diskFull() async throws {
        try await Self.withTmpfs { mountPoint in
        let dir = mountPoint + "/data"
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir) + Self.jobs, baseDirectory: dir)
        let agent = try Agent(config: config)
        try await agent.makeApplication().test(.router) { client in
            let http = InProcessAgent(agent: agent, client: client)
            let acknowledged = try #require(try await http.call(.post, "/api2/tasks.do", body: #"{"job":"d.sleep","param":{}}"#).message)
            // Fill the file system.
            _ = try Self.shell("dd if=/dev/zero of='\(mountPoint)/filler' bs=64k 2>/dev/null")
            let refused = try await http.call(.post, "/api2/tasks.do", body: #"{"job":"d.quick","param":{"pad":"\#(String(repeating: "x", count: 8000))"}}"#)
            #expect(refused.text == #"{"message":"内部错误","reason":"journal_failed","ret":false}"#)
            #expect(try await http.call(.get, "/api2/jobs/d.quick.do").ret == true)
            #expect(try await http.call(.get, "/api2/workers/d.quick.do").ret == true)
            #expect(try await http.call(.get, "/api2/tasks/\(acknowledged).do").data?["job"] == .string("d.sleep"))
            try FileManager.default.removeItem(atPath: mountPoint + "/filler")
            #expect(try await http.call(.post, "/api2/tasks.do", body: #"{"job":"d.quick"}"#).ret == true)
            #expect(try agent.store.task(acknowledged) != nil)
        }
        try agent.store.close()
        }
    }

    @Test("a read-only data_dir is a clear start-up error", .enabled(if: canMountTmpfs(), "needs root to mount a small tmpfs"))
    func readOnlyDataDir() async throws {
        try await Self.withTmpfs { mountPoint in
        let dir = mountPoint + "/data"
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir) + Self.jobs, baseDirectory: dir)
        do {
            let agent = try Agent(config: config)
            try agent.store.close()
        }
        #expect(try Self.shell("mount -o remount,ro '\(mountPoint)'") == 0)
        do {
            _ = try Agent(config: config)
            Issue.record("the agent started on a read-only data_dir")
        } catch {
            #expect("\(error)".contains("Read-only file system"), "\(error)")
            #expect("\(error)".contains(dir), "\(error)")
        }
        }
    }
}
