import Foundation
import Testing
@testable import QScheduleAgent

/// `[scheduler] url`: drain and resume tell a central server speaking the seed interface,
/// and each of its seven documented answers to `/api2/workers/state.do` is acted on.
@Suite("Central scheduler workers")
struct CentralWorkersTests {
    static func jobs(schedulerURL: String) -> String {
        """
        [scheduler]
        url = "\(schedulerURL)"

        [[job]]
        name = "c.a"
        command = ["/bin/true"]

        [[job]]
        name = "c.b"
        command = ["/bin/true"]
        """
    }

    /// One answer of the central server for job `c.b` (job `c.a` always answers `操作成功`).
    struct Case: Sendable, CustomTestStringConvertible {
        var message: String
        /// What `GET /api2/workers/c.b.do` lists (for the "verify" answer).
        var listed: JSONValue? = nil
        var outcome: String
        var testDescription: String { "\(message) \(listed.map { "listing \($0.jsonText)" } ?? "") -> \(outcome)" }
    }

    static func worker(_ address: String, _ canSchedule: Bool) -> JSONValue {
        .object(["address": .string(address), "canSchedule": .bool(canSchedule), "hostname": .string(address), "jobName": .string("c.b")])
    }

    static let cases: [Case] = [
        Case(message: SeedMessage.ok, outcome: "applied"),
        Case(message: SeedMessage.badRequest, outcome: "failed"),
        Case(message: SeedMessage.authFailed, outcome: "failed"),
        Case(message: SeedMessage.workersJSONInvalid, outcome: "failed"),
        Case(message: SeedMessage.operationFailed, outcome: "failed"),
        Case(message: SeedMessage.someWorkersNotApplied,
             listed: .array([worker("127.0.0.1:0", false)]),
             outcome: "applied"),
        Case(message: SeedMessage.someWorkersNotApplied,
             listed: .array([worker("10.9.9.9:20010", true)]),
             outcome: "not_listed"),
        Case(message: SeedMessage.someWorkersNotApplied,
             listed: .array([worker("127.0.0.1:0", true)]),
             outcome: "failed"),
    ]

    static func outcome(_ reply: Reply, job: String) -> JSONValue? {
        reply.data?["central"]?.arrayValue?.first { $0["job"]?.stringValue == job }
    }

    @Test("drain tells the central server, whatever it answers the host drains locally", arguments: cases)
    func drainOutcomes(_ answer: Case) async throws {
        let central = try await FakeUpstream.start()
        defer { Task { await central.stop() } }
        central.state.workersAnswer.withLock { $0["c.b"] = answer.message }
        if let listed = answer.listed { central.state.workersList.withLock { $0["c.b"] = listed } }
        try await InProcessAgent.with(jobs: Self.jobs(schedulerURL: central.baseURL)) { agent in
            let reply = try await agent.call(.post, "/api2/agent/drain.do", body: "{}")
            #expect(reply.ret == true && reply.message == SeedMessage.ok)
            #expect(Self.outcome(reply, job: "c.a")?["outcome"]?.stringValue == "applied")
            let b = try #require(Self.outcome(reply, job: "c.b"))
            #expect(b["outcome"]?.stringValue == answer.outcome)
            #expect(b["message"]?.stringValue?.hasPrefix(answer.message) == true)
            #expect(await agent.agent.runner.isDraining)
            // The seed's form: workers is a string holding JSON, this host's address → false.
            let calls = central.state.workerCalls.sorted { $0.job < $1.job }
            #expect(calls.map(\.job) == ["c.a", "c.b"])
            #expect(calls.allSatisfy { $0.workers == #"{"127.0.0.1:0":false}"# })
            let status = try await agent.call(.get, "/api2/agent/status.do")
            #expect(status.data?["central"]?["toldOffline"]?.boolValue == true)
        }
    }

    @Test("所有机器不能全部下线: the drain is refused and undone at the central server; forceLocal drains anyway")
    func lastWorker() async throws {
        let central = try await FakeUpstream.start()
        defer { Task { await central.stop() } }
        central.state.workersAnswer.withLock { $0["c.b"] = SeedMessage.allWorkersOffline }
        try await InProcessAgent.with(jobs: Self.jobs(schedulerURL: central.baseURL)) { agent in
            let refused = try await agent.call(.post, "/api2/agent/drain.do", body: "{}")
            #expect(refused.ret == false)
            #expect(refused.message == "所有机器不能全部下线")
            #expect(refused.reason == "last_worker")
            #expect(Self.outcome(refused, job: "c.b")?["outcome"]?.stringValue == "last_worker")
            #expect(Self.outcome(refused, job: "c.a")?["outcome"]?.stringValue == "failed")
            #expect(await !agent.agent.runner.isDraining)
            // c.a was switched off, then back on.
            let aCalls = central.state.workerCalls.filter { $0.job == "c.a" }.map(\.workers)
            #expect(aCalls == [#"{"127.0.0.1:0":false}"#, #"{"127.0.0.1:0":true}"#])
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"c.a"}"#).ret == true)

            let forced = try await agent.call(.post, "/api2/agent/drain.do", body: #"{"forceLocal":true}"#)
            #expect(forced.ret == true)
            #expect(Self.outcome(forced, job: "c.b")?["outcome"]?.stringValue == "last_worker")
            #expect(await agent.agent.runner.isDraining)
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"c.a"}"#).reason == "draining")
        }
    }

    @Test("central server down: the drain still happens locally, the failure is shown")
    func centralDown() async throws {
        let port = try await FakeUpstream.downPort()
        try await InProcessAgent.with(jobs: Self.jobs(schedulerURL: "http://127.0.0.1:\(port)")) { agent in
            let reply = try await agent.call(.post, "/api2/agent/drain.do", body: "{}")
            #expect(reply.ret == true)
            let b = try #require(Self.outcome(reply, job: "c.b"))
            #expect(b["outcome"]?.stringValue == "failed")
            #expect(b["message"]?.stringValue?.contains("connection refused") == true)
            #expect(await agent.agent.runner.isDraining)
            let status = try await agent.call(.get, "/api2/agent/status.do")
            #expect(status.data?["central"]?["toldOffline"]?.boolValue == false)
        }
    }

    @Test("resume tells the central server the host is back, and forgets the drain")
    func resume() async throws {
        let central = try await FakeUpstream.start()
        defer { Task { await central.stop() } }
        try await InProcessAgent.with(jobs: Self.jobs(schedulerURL: central.baseURL)) { agent in
            _ = try await agent.call(.post, "/api2/agent/drain.do", body: "{}")
            let reply = try await agent.call(.post, "/api2/agent/resume.do", body: "{}")
            #expect(reply.ret == true)
            #expect(reply.data?["central"]?.arrayValue?.allSatisfy { $0["outcome"]?.stringValue == "applied" } == true)
            #expect(central.state.workerCalls.suffix(2).allSatisfy { $0.workers == #"{"127.0.0.1:0":true}"# })
            let status = try await agent.call(.get, "/api2/agent/status.do")
            #expect(status.data?["central"]?["toldOffline"]?.boolValue == false)
        }
    }
}
