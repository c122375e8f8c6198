import Foundation
import Testing
@testable import QScheduleAgent

/// Drain, shutdown and crash recovery through the real binary, real signals, `kill -9`.
@Suite("End to end: drain, shutdown, crash", .serialized)
struct EndToEndDurabilityTests {
    @Test("drain while 3 jobs run: check says busy, then idle; drain --wait exits 0; a short timeout exits 1")
    func drainWhileRunning() async throws {
        let jobs = """
            [[job]]
            name = "e.a"
            command = ["/bin/sh", "-c", "while [ ! -e $DATA_DIR/go ]; do sleep 0.05; done"]
            [[job]]
            name = "e.b"
            command = ["/bin/sh", "-c", "while [ ! -e $DATA_DIR/go ]; do sleep 0.05; done"]
            [[job]]
            name = "e.c"
            command = ["/bin/sh", "-c", "while [ ! -e $DATA_DIR/go ]; do sleep 0.05; done"]

            """
        // The jobs run until the test lets them end (a flag file), not for a time a loaded
        // machine could outlast.
        try await AgentProcess.with(jobs: jobs) { (agent: AgentProcess) async throws in
            let cli = try agent.cliConfig()
            for job in ["e.a", "e.b", "e.c"] {
                #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#).ret == true)
            }
            var result = try await AgentProcess.runCLI(["drain", "--config", cli, "--wait", "--timeout", "0.3s"])
            #expect(result.status == 1, "\(result.output)")
            #expect(result.output.contains("still running: e.a") && result.output.contains("still running: e.c"), "\(result.output)")
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.a"}"#).reason == "draining")
            result = try await AgentProcess.runCLI(["check", "--config", cli])
            #expect(result.status == 1)
            _ = FileManager.default.createFile(atPath: agent.dataDir + "/go", contents: nil)
            result = try await AgentProcess.runCLI(["drain", "--config", cli, "--wait", "--timeout", "30s", "--interval", "0.2"])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("idle"))
            result = try await AgentProcess.runCLI(["check", "--config", cli])
            #expect(result.status == 0)
            for job in ["e.a", "e.b", "e.c"] {
                #expect(try await agent.call("GET", "/api2/jobs/\(job).do").data?["lastState"] == .int(200))
            }
            result = try await AgentProcess.runCLI(["resume", "--config", cli])
            #expect(result.status == 0)
            let last = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.a"}"#).message)
            // Ended before the agent is stopped: its loop waits for the flag file, which goes
            // with the data dir, so a task still starting then would loop on as an orphan.
            #expect(await eventually { (try? await agent.call("GET", "/api2/tasks/\(last).do").data?["state"]?.stringValue) == "finished" })
        }
    }

    @Test("SIGTERM with a long retry job: exit 0 after the grace; after restart it runs again as attempt 2")
    func sigtermThenRestart() async throws {
        let jobs = """
            [[job]]
            name = "e.long"
            command = ["/bin/sh", "-c", "echo attempt $QSCHEDULE_ATTEMPT >> $DATA_DIR/attempts.txt; sleep 30"]
            recover = "retry"

            [[job]]
            name = "e.lost"
            command = ["/bin/sleep", "30"]
            recover = "discard"

            """
        let first = try await AgentProcess.start(jobs: jobs, agentExtra: "shutdown_grace = 1\nkill_grace = 1")
        defer { first.killNow() }
        defer { try? FileManager.default.removeItem(atPath: first.dataDir) }
        let long = try #require(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"e.long","taskId":"long-1"}"#).message)
        let lost = try #require(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"e.lost","taskId":"lost-1"}"#).message)
        #expect(await eventually { FileManager.default.fileExists(atPath: first.dataDir + "/attempts.txt") })
        kill(first.process.processIdentifier, SIGTERM)
        // Draining: still answering, refusing new work.
        #expect(try await eventually { try await first.call("GET", "/api2/agent/status.do").data?["shuttingDown"] == .bool(true) })
        #expect(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"e.lost"}"#).reason == "draining")
        #expect(try await first.stop(signal: 0) == 0)

        let second = try await AgentProcess.start(jobs: jobs.replacingOccurrences(of: "sleep 30", with: "sleep 0.2"), dataDir: first.dataDir,
                                                  agentExtra: "shutdown_grace = 1\nkill_grace = 1")
        defer { second.killNow() }
        #expect(try await eventually(seconds: 15) { try await second.call("GET", "/api2/tasks/\(long).do").data?["lastState"] == .int(200) })
        let rerun = try #require(try await second.call("GET", "/api2/tasks/\(long).do").data)
        #expect(rerun["attempt"] == .int(2))
        #expect(try String(contentsOfFile: first.dataDir + "/attempts.txt", encoding: .utf8) == "attempt 1\nattempt 2\n")
        let discarded = try #require(try await second.call("GET", "/api2/tasks/\(lost).do").data)
        #expect(discarded["lastState"] == .int(503))
        #expect(discarded["message"] == .string("lost: the agent stopped while it ran"))
    }

    @Test("kill -9 during 500 concurrent dispatches: after restart every acknowledged task is accounted for, none ran twice at once")
    func crashDuringDispatches() async throws {
        let jobs = """
            [[job]]
            name = "e.work"
            command = ["/bin/sh", "-c", "echo start $QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT >> $DATA_DIR/runs.txt; sleep 0.3; echo end $QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT >> $DATA_DIR/runs.txt"]
            overlap = "concurrent"
            max_concurrency = 16
            max_queued = 1000
            recover = "retry"

            """
        let first = try await AgentProcess.start(jobs: jobs, agentExtra: "max_queued = 1000\nkill_grace = 1")
        defer { first.killNow() }
        defer { try? FileManager.default.removeItem(atPath: first.dataDir) }
        let acknowledged = Acknowledged()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // kill -9 once about half the dispatches were acknowledged.
                while await acknowledged.ids.count < 200, first.process.isRunning { try? await Task.sleep(for: .milliseconds(2)) }
                kill(first.process.processIdentifier, SIGKILL)
            }
            for index in 0..<500 {
                group.addTask {
                    if let reply = try? await first.call("POST", "/api2/tasks.do", json: #"{"job":"e.work","taskId":"w-\#(index)"}"#),
                       reply.ret == true, let id = reply.message {
                        await acknowledged.add(id)
                    }
                }
            }
        }
        _ = try? await first.stop(signal: SIGKILL)
        let acked = await acknowledged.ids
        print("acknowledged before kill -9: \(acked.count) of 500")
        #expect(!acked.isEmpty)

        let second = try await AgentProcess.start(jobs: jobs, dataDir: first.dataDir, agentExtra: "max_queued = 1000\nkill_grace = 1")
        defer { second.killNow() }
        #expect(try await eventually(seconds: 60) {
            try await second.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true
        })
        try await second.stop()
        let store = try AgentStore(dataDirectory: first.dataDir)
        for id in acked {
            let task = try #require(try store.task(id), "acknowledged task \(id) is missing")
            #expect(task.status == .finished, "\(id) is \(task.status)")
            #expect(task.result == .succeeded || task.result == .lost, "\(id): \(task.result) \(task.message)")
        }
        // Never twice at once: once attempt n of an id started, no earlier attempt of it may
        // still write (a run cut off by the crash is killed at restart, before the rerun), and
        // no attempt number runs twice.
        let lines = (try? String(contentsOfFile: first.dataDir + "/runs.txt", encoding: .utf8)) ?? ""
        var latest: [String: Int] = [:]
        var started: Set<String> = []
        for line in lines.split(separator: "\n") {
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count == 3, let attempt = Int(parts[2]) else { continue }
            let (event, id) = (parts[0], parts[1])
            if event == "start" {
                #expect(!started.contains("\(id)#\(attempt)"), "\(id) attempt \(attempt) started twice")
                started.insert("\(id)#\(attempt)")
                latest[id] = max(latest[id] ?? 0, attempt)
            } else {
                #expect(attempt >= latest[id] ?? 0, "\(id) attempt \(attempt) still ran after attempt \(latest[id] ?? 0) started")
            }
        }
        let reran = started.filter { $0.hasSuffix("#2") }.count
        print("runs started: \(started.count), of them reruns after the crash: \(reran)")
    }

    @Test("an orphaned process group of a crashed agent is killed on restart")
    func orphanKilledOnRestart() async throws {
        let jobs = """
            [[job]]
            name = "e.orphan"
            command = ["/bin/sh", "-c", "sh -c 'echo $$ > $DATA_DIR/child.pid; exec sleep 1000' & echo $$ > $DATA_DIR/leader.pid; wait"]
            recover = "discard"

            """
        let first = try await AgentProcess.start(jobs: jobs)
        defer { first.killNow() }
        defer { try? FileManager.default.removeItem(atPath: first.dataDir) }
        #expect(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"e.orphan","taskId":"orphan-1"}"#).ret == true)
        @Sendable func pid(_ name: String) -> Int32? {
            (try? String(contentsOfFile: first.dataDir + "/\(name).pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        #expect(await eventually { pid("leader") != nil && pid("child") != nil })
        try await Task.sleep(for: .milliseconds(200))
        kill(first.process.processIdentifier, SIGKILL)
        _ = try? await first.stop(signal: SIGKILL)
        let leader = try #require(pid("leader"))
        let child = try #require(pid("child"))
        #expect(ExecutionTests.isAlive(leader) && ExecutionTests.isAlive(child), "the orphans should outlive the agent's crash")

        let second = try await AgentProcess.start(jobs: jobs, dataDir: first.dataDir)
        defer { second.killNow() }
        #expect(await eventually(seconds: 10) { !ExecutionTests.isAlive(leader) && !ExecutionTests.isAlive(child) })
        #expect(try await eventually { try await second.call("GET", "/api2/tasks/orphan-1.do").data?["lastState"] == .int(503) })
    }
}

extension EndToEndDurabilityTests {
    static var canUnsharePID: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
    }

    /// Zombie processes whose parent is `pid`, from the host's /proc.
    static func zombieChildren(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && fields[0] == "Z" && Int32(fields[1]) == pid ? child : nil
        }
    }

    @Test("as PID 1 (own pid namespace): orphans of tasks are reaped, and SIGTERM drains and exits 0",
          .enabled(if: canUnsharePID, "needs root and unshare"))
    func asPIDOne() async throws {
        let jobs = """
            [[job]]
            name = "e.orphans"
            command = ["/bin/sh", "-c", "(sleep 0.3 &); setsid sh -c 'sleep 0.3' & exit 0"]

            """
        let agent = try await AgentProcess.start(jobs: jobs, wrapper: ["/usr/bin/unshare", "--fork", "--pid", "--mount-proc"])
        defer { agent.killNow() }
        defer { try? FileManager.default.removeItem(atPath: agent.dataDir) }
        // The agent is the unshare process's child, PID 1 inside the new namespace.
        let agentPID = try #require(await eventually { !Self.children(of: agent.process.processIdentifier).isEmpty }
            ? Self.children(of: agent.process.processIdentifier).first : nil)
        for _ in 0..<3 {
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.orphans"}"#).ret == true)
        }
        try await Task.sleep(for: .seconds(1))
        #expect(await eventually(seconds: 10) { Self.zombieChildren(of: agentPID).isEmpty }, "zombies: \(Self.zombieChildren(of: agentPID))")
        #expect(try await agent.call("GET", "/api2/jobs/e.orphans.do").data?["lastState"] == .int(200))
        kill(agentPID, SIGTERM)
        #expect(try await agent.stop(signal: 0) == 0)
    }

    static func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }
}

/// Task ids acknowledged with `ret:true`, collected from concurrent requests.
actor Acknowledged {
    private(set) var ids: [String] = []
    func add(_ id: String) { ids.append(id) }
}
