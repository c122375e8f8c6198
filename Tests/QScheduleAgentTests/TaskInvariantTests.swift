import Foundation
import Testing
@testable import QScheduleAgent

/// The task invariants under crashes and a full disk, through the real binary: an
/// acknowledged task is never lost, a (task id, attempt) never runs twice, a finished task
/// never runs again.
@Suite("End to end: task invariants under kill -9 and a full disk", .serialized)
struct TaskInvariantTests {
    /// One line per run of the job: `<task id> <attempt>`, appended by the job itself.
    struct Runs {
        var lines: [(id: String, attempt: Int)]

        init(path: String) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let attempt = Int(parts[1]) else { return nil }
                return (String(parts[0]), attempt)
            }
        }

        /// (id, attempt) pairs that ran more than once.
        var duplicates: [String] {
            Dictionary(grouping: lines, by: { "\($0.id)#\($0.attempt)" }).filter { $0.value.count > 1 }.keys.sorted()
        }

        /// The highest attempt that ran, by task id.
        var latestAttempt: [String: Int] {
            lines.reduce(into: [:]) { $0[$1.id] = max($0[$1.id] ?? 0, $1.attempt) }
        }
    }

    @Test("kill -9 at random moments while 4 clients dispatch: 0 acknowledged tasks lost, 0 (task, attempt) run twice")
    func crashLoop() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let jobs = """
            [[job]]
            name = "e.fast"
            command = ["/bin/sh", "-c", "echo \\"$QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT\\" >> $DATA_DIR/runs.txt"]
            overlap = "concurrent"
            max_concurrency = 8
            max_queued = 5000
            recover = "retry"
            max_attempts = 100

            """
        let extra = "max_queued = 5000\nkill_grace = 1"
        let acknowledged = Acknowledged()
        // At least 12 rounds and 1,000 acknowledged tasks, however slow the machine (at most 60 rounds).
        var rounds = 0
        while true {
            let enough = await acknowledged.ids.count >= 1000
            guard rounds < 12 || (!enough && rounds < 60) else { break }
            let round = rounds
            rounds += 1
            let agent = try await AgentProcess.start(jobs: jobs, dataDir: dir, agentExtra: extra)
            defer { agent.killNow() }
            let before = await acknowledged.ids.count
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Let some work be acknowledged, then kill -9 at a random moment.
                    while await acknowledged.ids.count == before, agent.process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
                    try? await Task.sleep(for: .milliseconds(Int.random(in: 50...700)))
                    kill(agent.process.processIdentifier, SIGKILL)
                }
                for client in 0..<4 {
                    group.addTask {
                        var index = 0
                        while agent.process.isRunning {
                            index += 1
                            let id = "r\(round)-c\(client)-\(index)"
                            guard let reply = try? await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.fast","taskId":"\#(id)"}"#) else { break }
                            if reply.ret == true, reply.message == id { await acknowledged.add(id) }
                        }
                    }
                }
            }
            _ = try? await agent.stop(signal: SIGKILL)
        }

        // A last, clean run settles everything that was left.
        let final = try await AgentProcess.start(jobs: jobs, dataDir: dir, agentExtra: extra)
        defer { final.killNow() }
        #expect(try await eventually(seconds: 120) {
            try await final.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true
        })
        #expect(try await final.stop() == 0)

        let acked = await acknowledged.ids
        let runs = Runs(path: dir + "/runs.txt")
        let latest = runs.latestAttempt
        let store = try AgentStore(dataDirectory: dir)
        defer { try? store.close() }
        var missing: [String] = []
        var wrongAttempt: [String] = []
        for id in acked {
            guard let task = try store.task(id), task.status == .finished, task.result == .succeeded, let ran = latest[id] else {
                missing.append(id)
                continue
            }
            // The journal's attempt is the one that finished: the last that ran.
            if task.attempt != ran { wrongAttempt.append("\(id): journal \(task.attempt), ran \(ran)") }
        }
        let reruns = runs.lines.filter { $0.attempt > 1 }.count
        print("crash loop: \(rounds) kill -9 rounds, \(acked.count) acknowledged, \(runs.lines.count) runs (\(reruns) reruns as attempt > 1), "
              + "\(missing.count) lost, \(runs.duplicates.count) (task, attempt) run twice")
        #expect(acked.count >= 1000, "too little work to mean anything: \(acked.count) acknowledged")
        #expect(missing.isEmpty, "acknowledged but not finished with 200: \(missing.prefix(10))")
        #expect(runs.duplicates.isEmpty, "ran twice: \(runs.duplicates.prefix(10))")
        #expect(wrongAttempt.isEmpty, "\(wrongAttempt.prefix(10))")
        #expect(try store.unfinishedTasks().isEmpty)
    }

    @Test("full disk: start and completion writes are retried while the tasks stay visible; space returns → all settle, none reruns",
          .enabled(if: DurabilityTests.canMountTmpfs(), "needs root to mount a small tmpfs"))
    func diskFullSettles() async throws {
        let outside = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try await DurabilityTests.withTmpfs { mountPoint in
            let dir = mountPoint + "/data"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            // Waits for the flag, then records its run outside the full file system; prints nothing (no log file).
            let jobs = """
                [[job]]
                name = "e.wait"
                command = ["/bin/sh", "-c", "while [ ! -e \(outside)/go ]; do sleep 0.02; done; echo \\"$QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT\\" >> \(outside)/runs.txt"]
                overlap = "concurrent"
                max_concurrency = 4
                recover = "retry"

                """
            let agent = try await AgentProcess.start(jobs: jobs, dataDir: dir)
            defer { agent.killNow() }
            // 4 running, 3 queued behind them.
            for index in 0..<7 {
                #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.wait","taskId":"full-\#(index)"}"#).ret == true)
            }
            #expect(try await eventually { try await agent.call("GET", "/api2/agent/status.do").data?["running"] == .int(4) })
            _ = try DurabilityTests.shell("dd if=/dev/zero of='\(mountPoint)/filler' bs=64k 2>/dev/null")
            _ = FileManager.default.createFile(atPath: outside + "/go", contents: nil)
            // The 4 ran; their completions cannot be journaled; the 3 queued cannot journal their start, so do not run.
            #expect(await eventually { Runs(path: outside + "/runs.txt").lines.count == 4 })
            #expect(try await eventually { try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.wait"}"#).message == "内部错误" })
            try await Task.sleep(for: .seconds(1))
            #expect(Runs(path: outside + "/runs.txt").lines.count == 4, "a task ran before its start was journaled")
            let check = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil)
            #expect(check.data?.arrayValue?.count == 1, "the host must not look idle while tasks are unsettled: \(check.text)")
            let status = try #require(try await agent.call("GET", "/api2/agent/status.do").data)
            #expect(status["running"] == .int(7), "\(status)")
            #expect(status["runningTasks"]?.arrayValue?.count == 7, "\(status)")
            #expect(agent.log.contains("journal write failed; retrying"))

            // Space returns: everything settles without a restart.
            try FileManager.default.removeItem(atPath: mountPoint + "/filler")
            #expect(try await eventually(seconds: 20) {
                try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true
            })
            for index in 0..<7 {
                let task = try await agent.call("GET", "/api2/tasks/full-\(index).do").data
                #expect(task?["state"] == .string("finished") && task?["lastState"] == .int(200), "full-\(index): \(String(describing: task))")
            }
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"e.wait","taskId":"after"}"#).ret == true)
            #expect(await eventually { Runs(path: outside + "/runs.txt").lines.count == 8 })

            // A restart runs nothing again.
            #expect(try await agent.stop() == 0)
            let again = try await AgentProcess.start(jobs: jobs, dataDir: dir)
            defer { again.killNow() }
            try await Task.sleep(for: .seconds(1))
            #expect(try await again.call("GET", "/api/check/127.0.0.1.do", token: nil).data?.arrayValue?.isEmpty == true)
            let runs = Runs(path: outside + "/runs.txt")
            #expect(runs.lines.count == 8 && runs.duplicates.isEmpty, "\(runs.lines)")
            #expect(try await again.stop() == 0)
        }
    }
}
