import Foundation
import Testing
@testable import QScheduleAgent

/// `[report] url`: the durable outbox, its delivery (backoff, Retry-After, bad answers),
/// back-pressure and the heartbeat, against a real HTTP receiver on loopback.
@Suite("Report outbox")
struct ReportOutboxTests {
    /// A `[report]` table aimed at `url` with fast retries, and one quick command job.
    static func jobs(reportURL: String, extra: String = "") -> String {
        """
        [report]
        url = "\(reportURL)"
        backoff_min_ms = 20
        backoff_max_ms = 200
        heartbeat_interval = 0
        timeout = 1
        \(extra)

        [[job]]
        name = "r.quick"
        command = ["/bin/true"]
        overlap = "concurrent"
        max_concurrency = 8

        [[job]]
        name = "r.sleepy"
        command = ["/bin/sleep", "60"]
        overlap = "concurrent"
        max_concurrency = 8
        recover = "discard"
        """
    }

    static func dispatch(_ agent: InProcessAgent, _ count: Int, job: String = "r.quick") async throws -> [String] {
        var ids: [String] = []
        for _ in 0..<count {
            let reply = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)","param":{}}"#)
            ids.append(try #require(reply.ret == true ? reply.message : nil, "dispatch refused: \(reply.text)"))
        }
        return ids
    }

    static func report(_ agent: InProcessAgent) async throws -> JSONValue {
        try #require(try await agent.call(.get, "/api2/agent/status.do").data?["report"])
    }

    @Test("receiver down for a while, then up: every report delivered, with the contract's fields")
    func downThenUp() async throws {
        let port = try await FakeUpstream.downPort()
        let url = "http://127.0.0.1:\(port)/api2/agent/report.do"
        try await InProcessAgent.with(jobs: Self.jobs(reportURL: url)) { agent in
            let ids = try await Self.dispatch(agent, 30)
            #expect(try await eventually { try await Self.report(agent)["depth"]?.intValue == 30 })
            let waiting = try await Self.report(agent)
            #expect(waiting["consecutiveFailures"]?.intValue ?? 0 >= 1)
            #expect(waiting["lastError"]?.stringValue?.contains("refused") == true)
            #expect(waiting["oldestAgeMs"]?.intValue ?? -1 >= 0)

            let receiver = try await FakeUpstream.start(port: port)
            defer { Task { await receiver.stop() } }
            #expect(await eventually(seconds: 60) { Set(receiver.state.reportIDs) == Set(ids) })
            #expect(try await eventually { try await Self.report(agent)["depth"]?.intValue == 0 })
            let delivered = try await Self.report(agent)
            #expect(delivered["consecutiveFailures"]?.intValue == 0)
            #expect(delivered["delivered"]?.intValue ?? 0 >= 30)

            let one = try #require(receiver.state.reports.first { $0["taskId"]?.stringValue == ids[0] })
            #expect(one["job"]?.stringValue == "r.quick")
            #expect(one["address"]?.stringValue == agent.agent.identity.address)
            #expect(one["state"]?.intValue == 200)
            #expect(one["attempt"]?.intValue == 1)
            #expect(one["message"]?.stringValue != nil)
            let start = try #require(one["startTime"]?.intValue), end = try #require(one["endTime"]?.intValue)
            #expect(start <= end && one["duration"]?.intValue == end - start)
            // Duplicates, if any, only repeat a taskId already delivered.
            #expect(Set(receiver.state.reportIDs).isSubset(of: Set(ids)))
        }
    }

    @Test("a receiver answering badly keeps the reports until it accepts", arguments: [
        ReceiverMode.status(500), .status(401), .garbage, .refuse, .slow(seconds: 2.5),
    ])
    func badAnswers(mode: ReceiverMode) async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        receiver.state.mode.withLock { $0 = mode }
        try await InProcessAgent.with(jobs: Self.jobs(reportURL: receiver.reportURL)) { agent in
            let ids = try await Self.dispatch(agent, 5)
            #expect(await eventually { receiver.state.reportPosts >= 2 })
            #expect(try await eventually { try await Self.report(agent)["lastError"]?.stringValue != nil })
            let report = try await Self.report(agent)
            #expect(report["depth"]?.intValue ?? 0 > 0)
            if mode != .slow(seconds: 2.5) { #expect(receiver.state.reports.isEmpty) }

            receiver.state.mode.withLock { $0 = .accept }
            let delivered = await eventually(seconds: 60) { Set(receiver.state.reportIDs) == Set(ids) }
            if !delivered {
                // What the agent and the receiver say, for whoever reads the failure.
                let state = (try? await Self.report(agent))?.jsonText ?? "?"
                let tasks = ids.map { id in
                    let record = try? agent.agent.store.task(id)
                    return "\(id): \(record.map { "\($0.status) \($0.result) \($0.message)" } ?? "none")"
                }
                let active = await agent.agent.runner.activeJobs()
                let missing = Set(ids).subtracting(receiver.state.reportIDs)
                Issue.record("not delivered within 60 s of accepting: agent report state \(state); posts received \(receiver.state.reportPosts); missing \(missing); tasks \(tasks); active \(active)")
            }
            #expect(try await eventually { try await Self.report(agent)["depth"]?.intValue == 0 })
            #expect(Set(receiver.state.reportIDs).isSubset(of: Set(ids)))
        }
    }

    @Test("429 with Retry-After: the next attempt waits at least that long")
    func retryAfter() async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        receiver.state.mode.withLock { $0 = .tooMany(retryAfter: 2) }
        try await InProcessAgent.with(jobs: Self.jobs(reportURL: receiver.reportURL)) { agent in
            let ids = try await Self.dispatch(agent, 1)
            #expect(await eventually { receiver.state.reportPosts == 1 })
            #expect(try await eventually { try await Self.report(agent)["lastError"]?.stringValue == "receiver answered HTTP 429" })
            let report = try await Self.report(agent)
            let due = try #require(report["nextAttemptAt"]?.intValue)
            #expect(due - Date().epochMilliseconds > 1000)  // backoff alone would be ≤ 200 ms
            receiver.state.mode.withLock { $0 = .accept }
            #expect(await eventually(seconds: 60) { receiver.state.reportIDs == ids })
            let times = receiver.state.recorded.withLock { $0.attemptTimes }
            #expect(times.count == 2)
            #expect(times[1] - times[0] >= .milliseconds(1900))
        }
    }

    @Test("outbox full: dispatches refused with outbox_full, nothing journaled; accepted again once delivered")
    func backPressure() async throws {
        let port = try await FakeUpstream.downPort()
        let url = "http://127.0.0.1:\(port)/api2/agent/report.do"
        try await InProcessAgent.with(jobs: Self.jobs(reportURL: url, extra: "outbox_max = 3")) { agent in
            let ids = try await Self.dispatch(agent, 3, job: "r.sleepy")
            // Three running tasks will add three reports: the outbox is full already.
            let refused = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"r.quick"}"#)
            #expect(refused.text == #"{"message":"重试失败","reason":"outbox_full","ret":false}"#)
            #expect(try agent.agent.store.tasks(job: "r.quick").isEmpty)
            for id in ids { _ = try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"\#(id)"}"#) }
            #expect(try await eventually { try await Self.report(agent)["depth"]?.intValue == 3 })
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"r.quick"}"#).reason == "outbox_full")

            let receiver = try await FakeUpstream.start(port: port)
            defer { Task { await receiver.stop() } }
            #expect(await eventually(seconds: 60) { Set(receiver.state.reportIDs) == Set(ids) })
            #expect(receiver.state.reports.allSatisfy { $0["state"]?.intValue == 499 })
            #expect(try await eventually { try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"r.quick"}"#).ret == true })
        }
    }

    @Test("batches are bounded in count and bytes")
    func batches() async throws {
        let port = try await FakeUpstream.downPort()
        let url = "http://127.0.0.1:\(port)/api2/agent/report.do"
        try await InProcessAgent.with(jobs: Self.jobs(reportURL: url, extra: "batch_max = 4")) { agent in
            let ids = try await Self.dispatch(agent, 10)
            #expect(try await eventually { try await Self.report(agent)["depth"]?.intValue == 10 })
            let store = agent.agent.store
            #expect(try store.outboxBatch(limit: 4, maxBytes: 1 << 20).count == 4)
            let sizes = try store.outboxBatch(limit: 2, maxBytes: 1 << 20).map(\.payload.utf8.count)
            // Each report counts its bytes plus one for the separating comma.
            #expect(try store.outboxBatch(limit: 100, maxBytes: sizes[0] + sizes[1] + 2).count == 2)
            #expect(try store.outboxBatch(limit: 100, maxBytes: 1).count == 1)  // one always goes

            let receiver = try await FakeUpstream.start(port: port)
            defer { Task { await receiver.stop() } }
            #expect(await eventually(seconds: 60) { Set(receiver.state.reportIDs) == Set(ids) })
            #expect(receiver.state.reportPosts >= 3)
        }
    }

    @Test("heartbeat: address, version, draining and running task ids")
    func heartbeat() async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        let jobs = Self.jobs(reportURL: receiver.reportURL).replacingOccurrences(of: "heartbeat_interval = 0", with: "heartbeat_interval = 1")
        try await InProcessAgent.with(jobs: jobs) { agent in
            let ids = try await Self.dispatch(agent, 1, job: "r.sleepy")
            #expect(await eventually {
                receiver.state.heartbeats.contains { $0["running"]?.arrayValue?.compactMap(\.stringValue) == ids }
            })
            let beat = try #require(receiver.state.heartbeats.last)
            #expect(beat["address"]?.stringValue == agent.agent.identity.address)
            #expect(beat["version"]?.stringValue == AgentVersion.current)
            #expect(beat["draining"]?.boolValue == false)
            _ = try await agent.call(.post, "/api2/agent/drain.do", body: "{}")
            #expect(await eventually { receiver.state.heartbeats.last?["draining"]?.boolValue == true })
            // Counted once the agent has read the receiver's answer, just after the receiver saw it.
            #expect(try await eventually { try await Self.report(agent)["heartbeatsSent"]?.intValue ?? 0 >= 2 })
        }
    }

    @Test("Retry-After: delay-seconds and HTTP dates; backoff grows, is capped and jittered")
    func backoffArithmetic() {
        func reply(_ value: String) -> HTTPTransport.Reply { .init(status: 429, headers: ["retry-after": value], body: Data()) }
        #expect(Reporter.retryAfter(reply("7")) == .seconds(7))
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(Reporter.retryAfter(reply("Tue, 14 Nov 2023 22:13:30 GMT"), now: now) == .seconds(10))
        #expect(Reporter.retryAfter(reply("soon"), now: now) == nil)
        for failures in 1...20 {
            let wait = Reporter.backoff(failures: failures, minMs: 100, maxMs: 5000, retryAfter: nil)
            let ceiling = min(5000, 100 << (failures - 1))
            #expect(wait >= .milliseconds(ceiling / 2) && wait <= .milliseconds(ceiling))
        }
        #expect(Reporter.backoff(failures: 1, minMs: 100, maxMs: 5000, retryAfter: .seconds(30)) == .seconds(30))
        #expect(Reporter.backoff(failures: 1, minMs: 100, maxMs: 5000, retryAfter: .seconds(86_400)) == .seconds(3600))
    }
}

/// The outbox across process deaths, with the real binary.
@Suite("Report outbox end to end")
struct ReportOutboxEndToEndTests {
    @Test("agent killed with a non-empty outbox: everything is delivered after the restart")
    func killedWithReportsWaiting() async throws {
        let port = try await FakeUpstream.downPort()
        let jobs = ReportOutboxTests.jobs(reportURL: "http://127.0.0.1:\(port)/api2/agent/report.do")
        let first = try await AgentProcess.start(jobs: jobs)
        var ids: [String] = []
        for _ in 0..<10 {
            ids.append(try #require(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"r.quick"}"#).message))
        }
        #expect(try await eventually { try await first.call("GET", "/api2/agent/status.do").data?["report"]?["depth"]?.intValue == 10 })
        first.killNow()
        let expected = Set(ids)

        let receiver = try await FakeUpstream.start(port: port)
        defer { Task { await receiver.stop() } }
        let second = try await AgentProcess.start(jobs: jobs, dataDir: first.dataDir)
        #expect(await eventually(seconds: 60) { Set(receiver.state.reportIDs) == expected })
        #expect(receiver.state.reports.allSatisfy { $0["address"]?.stringValue == "127.0.0.1:\(first.port)" })
        _ = try await second.stop()
    }

    @Test("shutdown: tasks lost to it are reported 503 before the agent exits")
    func shutdownFlush() async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        let agent = try await AgentProcess.start(jobs: ReportOutboxTests.jobs(reportURL: receiver.reportURL),
                                                 agentExtra: "shutdown_grace = 0\nkill_grace = 1")
        var ids: [String] = []
        for _ in 0..<2 {
            ids.append(try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"r.sleepy"}"#).message))
        }
        #expect(try await eventually { try await agent.call("GET", "/api2/agent/status.do").data?["running"]?.intValue == 2 })
        #expect(try await agent.stop() == 0)
        // Already delivered when the process exited: no waiting here.
        #expect(Set(receiver.state.reportIDs) == Set(ids))
        #expect(receiver.state.reports.allSatisfy { $0["state"]?.intValue == 503 }, "\(receiver.state.reports)")
    }

    @Test("alert_after_failures: the run of failures reaching it sends one alert event through the outbox ({\"alerts\":[...]}), a success resets the run, a kill does not count; logged and counted")
    func alerts() async throws {
        let receiver = try await FakeUpstream.start()
        defer { Task { await receiver.stop() } }
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let jobs = ReportOutboxTests.jobs(reportURL: receiver.reportURL) + """

            [[job]]
            name = "r.flaky"
            alert_after_failures = 2
            command = ["/bin/sh", "-c", "[ -e \(dir)/ok ]"]

            [[job]]
            name = "r.never"
            alert_after_failures = 0
            command = ["/bin/false"]

            """
        try await InProcessAgent.with(jobs: jobs) { agent in
            func run(_ job: String) async throws -> String {
                let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)"}"#).message)
                #expect(try await eventually { try agent.agent.store.task(id)?.status == .finished })
                return id
            }
            _ = try await run("r.flaky")
            let second = try await run("r.flaky")
            _ = try await run("r.flaky")  // the same run of failures: no second alert
            _ = try await run("r.never")
            _ = try await run("r.never")
            // Delivery is at-least-once (a POST that timed out on a loaded machine may have been
            // taken too): events are counted by their task id, as a receiver deduplicates them.
            @Sendable func alertIDs() -> Set<String> { Set(receiver.state.alerts.compactMap { $0["taskId"]?.stringValue }) }
            #expect(await eventually { alertIDs().count == 1 && Set(receiver.state.reportIDs).count == 5 })
            let alert = try #require(receiver.state.alerts.first)
            #expect(alert["job"] == .string("r.flaky"))
            #expect(alert["consecutiveFailures"] == .int(2) && alert["threshold"] == .int(2))
            #expect(alert["taskId"] == .string(second) && alert["state"] == .int(500))
            #expect(alert["address"] == .string(agent.agent.identity.address))
            #expect(alert["message"] == .string("exit code 1"))
            // A success ends the run; two more failures make a new one.
            _ = FileManager.default.createFile(atPath: dir + "/ok", contents: nil)
            _ = try await run("r.flaky")
            try FileManager.default.removeItem(atPath: dir + "/ok")
            _ = try await run("r.flaky")
            _ = try await run("r.flaky")
            #expect(await eventually { alertIDs().count == 2 })
            #expect(receiver.state.recorded.withLock { $0.mixedBodies } == 0)
            let metrics = agent.agent.metrics.registry.emitToString()
            #expect(metrics.contains(#"qagent_alerts_total{job="r.flaky"} 2"#), "\(metrics)")
            #expect(!metrics.contains(#"qagent_alerts_total{job="r.never"}"#))
        }
    }
}
