import Foundation
import GRDB
import Testing
@testable import QScheduleAgent

/// Upgrade safety of `data_dir`: a store written by an earlier qagent opens and migrates
/// (`Fixtures/store-0.1.0/qagent.sqlite`, made by `QAGENT_WRITE_STORE_FIXTURE=1 swift test
/// --filter StoreUpgradeTests` with release 0.1.0's code, and kept as it is from then on);
/// a store a newer qagent migrated is refused with a clear error and left untouched.
@Suite("Store upgrades")
struct StoreUpgradeTests {
    static let fixture = ConfigLoaderTests.repositoryRoot.appendingPathComponent("Tests/QScheduleAgentTests/Fixtures/store-0.1.0/qagent.sqlite").path

    /// What the fixture holds (see ``writeFixture()``).
    static let finishedTask = "fixture-ok"
    static let failedTask = "fixture-fail"
    static let queuedTask = "fixture-queued"

    @Test("writes the fixture store (only with QAGENT_WRITE_STORE_FIXTURE=1)", .enabled(if: ProcessInfo.processInfo.environment["QAGENT_WRITE_STORE_FIXTURE"] == "1"))
    func writeFixture() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try AgentStore(dataDirectory: dir, reportAddress: { "127.0.0.1:20010" })
            for (id, result) in [(Self.finishedTask, TaskResult.succeeded), (Self.failedTask, .failed)] {
                try await store.insertTask(TaskRecord(id: id, job: "fixture.job", param: #"{"n":1}"#, trigger: .dispatch, acceptedAt: 1_795_000_000_000))
                try await store.markRunning(id, attempt: 1, startTime: 1_795_000_000_100)
                try await store.finishTask(TaskCompletion(
                    taskID: id, job: "fixture.job", result: result, startTime: 1_795_000_000_100, endTime: 1_795_000_000_600,
                    exitCode: result == .succeeded ? 0 : 3, message: result == .succeeded ? "exit code 0" : "exit code 3"))
            }
            try await store.insertTask(TaskRecord(id: Self.queuedTask, job: "fixture.job", param: "{}", trigger: .dispatch, acceptedAt: 1_795_000_001_000))
            try store.setEnabled(false, jobs: ["fixture.off"])
            try store.close()
        }
        // One file, no WAL beside it.
        let queue = try DatabaseQueue(path: dir + "/qagent.sqlite")
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE") }
        try queue.close()
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: Self.fixture).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: Self.fixture)
        try FileManager.default.copyItem(atPath: dir + "/qagent.sqlite", toPath: Self.fixture)
    }

    @Test("the 0.1.0 store opens and migrates: its tasks, job state and outbox are all there, and the agent runs on it")
    func fixtureOpens() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: dir + "/qagent.sqlite")
        do {
            let store = try AgentStore(dataDirectory: dir, reportAddress: { "127.0.0.1:20010" })
            #expect(try store.task(Self.finishedTask)?.result == .succeeded)
            #expect(try store.task(Self.failedTask)?.message == "exit code 3")
            #expect(try store.task(Self.queuedTask)?.status == .queued)
            #expect(try store.jobStates()["fixture.off"]?.enabled == false)
            #expect(try store.outboxBatch(limit: 10, maxBytes: 1 << 20).map(\.taskID) == [Self.finishedTask, Self.failedTask])
            try store.close()
        }
        // The real binary on that data_dir: the leftover queued task runs (recover = retry), the others are as they were.
        let jobs = "[[job]]\nname = \"fixture.job\"\ncommand = [\"/bin/true\"]\n\n[[job]]\nname = \"fixture.off\"\ncommand = [\"/bin/true\"]\n"
        // (retention_days: the fixture's tasks finished in November 2026; they must not be pruned.)
        let agent = try await AgentProcess.start(jobs: jobs, dataDir: dir, agentExtra: "retention_days = 3650")
        defer { agent.killNow() }
        #expect(try await eventually { try await agent.call("GET", "/api2/tasks/\(Self.queuedTask).do").data?["lastState"] == .int(200) })
        #expect(try await agent.call("GET", "/api2/tasks/\(Self.failedTask).do").data?["lastState"] == .int(500))
        #expect(try await agent.call("GET", "/api2/jobs/fixture.off.do").data?["state"] == .bool(false))
    }

    @Test("a store a newer qagent migrated is refused at start with a clear error (exit 2), and left untouched")
    func newerStoreRefused() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: dir + "/qagent.sqlite")
        do {
            let queue = try DatabaseQueue(path: dir + "/qagent.sqlite")
            try await queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')") }
            try queue.close()
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/qagent.sqlite"))
        #expect(throws: AgentStore.StoreError.self) { try AgentStore(dataDirectory: dir) }
        try (agentTOML(dataDir: dir) + "\n").write(toFile: dir + "/agent.conf", atomically: true, encoding: .utf8)
        let result = try await AgentProcess.runCLI(["run", "--config", dir + "/agent.conf"])
        #expect(result.status == 2)
        #expect(result.output.contains("cannot open the store in data_dir \"\(dir)\": it was written by a newer qagent (store migrations v99-from-the-future; this qagent knows up to "), "\(result.output)")
        #expect(result.output.contains("upgrade qagent, or restore the data_dir the previous version used"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/qagent.sqlite")) == before)
    }
}
