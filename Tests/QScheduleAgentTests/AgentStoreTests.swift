import Foundation
import Testing
@testable import QScheduleAgent

@Suite("SQLite store")
struct AgentStoreTests {
    @Test("the outbox count stays the table's while reports are removed and queued at once (a removal never erases a report committed meanwhile)")
    func outboxCountUnderRace() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AgentStore(dataDirectory: dir, reportAddress: { "127.0.0.1:20010" })
        defer { try? store.close() }
        @Sendable func finish(_ id: String) async throws {
            try await store.insertTask(TaskRecord(id: id, job: "j", param: "{}", trigger: .dispatch, acceptedAt: 1000))
            try await store.markRunning(id, attempt: 1, startTime: 1100)
            try await store.finishTask(TaskCompletion(taskID: id, job: "j", result: .succeeded, startTime: 1100, endTime: 1200, message: "ok"))
        }
        try await finish("r-0")
        for round in 1...150 {
            let queued = try store.outboxBatch(limit: 100, maxBytes: 1 << 20).map(\.seq)
            async let removal: Void = store.removeFromOutbox(queued)
            async let another: Void = finish("r-\(round)")
            _ = try await (removal, another)
            let table = try store.outboxBatch(limit: 1000, maxBytes: 1 << 30).count
            #expect(store.outboxDepth.value == table, "round \(round): counted \(store.outboxDepth.value), the table holds \(table)")
            if store.outboxDepth.value != table { break }
        }
    }

    @Test("the journal keeps tasks and job state across a reopen; a task id is journaled once")
    func persistence() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try AgentStore(dataDirectory: dir)
            var task = TaskRecord(id: "t-1", job: "j", param: #"{"a":1}"#, trigger: .dispatch, acceptedAt: 1000)
            task.scheduledAt = 900
            try await store.insertTask(task)
            await #expect(throws: AgentStore.StoreError.duplicateTask) { try await store.insertTask(task) }
            try await store.markRunning("t-1", attempt: 2, startTime: 1100)
            store.recordProcessSoon("t-1", process: ProcessIdentity(pid: 4242, startTicks: 7, instance: "i-1"))
            try await store.finishTask(TaskCompletion(taskID: "t-1", job: "j", result: .failed, startTime: 1100, endTime: 1350, exitCode: 3, message: "exit code 3"))
            try store.setEnabled(false, jobs: ["j", "k"])
            try store.setCanSchedule(false, job: "j")
            try store.close()
        }
        let reopened = try AgentStore(dataDirectory: dir)
        let task = try #require(try reopened.task("t-1"))
        #expect(task.status == .finished)
        #expect(task.result == .failed)
        #expect(task.duration == 250)
        #expect(task.pid == 4242)
        #expect(task.attempt == 2)
        #expect(task.exitCode == 3)
        #expect(task.scheduledAt == 900)
        let state = try reopened.jobState("j")
        #expect(state == JobStateRecord(name: "j", enabled: false, canSchedule: false, lastRun: 1100, lastState: 500, lastDuration: 250, lastUpdate: 1350))
        #expect(try reopened.jobState("k").enabled == false)
        #expect(try reopened.jobState("never-seen") == JobStateRecord(name: "never-seen"))
    }

    @Test("a job taken offline on this host stays offline after a restart of the agent")
    func offlinePersists() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir) + "[[job]]\nname = \"j\"\ncommand = [\"/bin/true\"]\n", baseDirectory: dir)
        do {
            let agent = try Agent(config: config)
            try await agent.runner.setCanSchedule(false, job: "j")
            try agent.store.close()
        }
        let restarted = try Agent(config: config)
        #expect(await restarted.runner.canSchedule("j") == false)
        #expect(await restarted.runner.dispatch(job: "j", param: .object([:])) == .refused(.workerOffline))
    }

    @Test("the database is SQLite in WAL mode with synchronous=FULL, under data_dir")
    func pragmas() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AgentStore(dataDirectory: dir)
        #expect(store.path == dir + "/qagent.sqlite")
        #expect(try store.pragma("journal_mode") == "wal")
        #expect(try store.pragma("synchronous") == "2")
    }
}
