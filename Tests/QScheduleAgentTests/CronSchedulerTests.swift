import Foundation
import Testing
@testable import QScheduleAgent

@Suite("Cron scheduler")
struct CronSchedulerTests {
    static let jobs = """
        [[job]]
        name = "c.every"
        cron = "* * * * * ?"
        command = ["/bin/true"]
        overlap = "concurrent"
        max_concurrency = 4

        [[job]]
        name = "c.off"
        cron = "* * * * * ?"
        command = ["/bin/true"]
        enabled = false

        [[job]]
        name = "c.daily"
        cron = "0 30 9 * * ?"
        command = ["/bin/true"]

        [[job]]
        name = "c.past"
        cron = "0 0 0 1 1 ? 2020"
        command = ["/bin/true"]

        [[job]]
        name = "c.plain"
        command = ["/bin/true"]

        """

    @Test("a due job fires through the runner with its scheduled time; fires are whole seconds apart, no drift")
    func fires() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { agent in
            // Whether fires happen, not how fast: a loaded machine can stretch commits (lateness is
            // what Benchmarks/cron.sh measures).
            #expect(try await eventually(seconds: 30) { try agent.agent.store.tasks(job: "c.every").count >= 3 })
            let tasks = try agent.agent.store.tasks(job: "c.every")
            let scheduled = tasks.compactMap(\.scheduledAt)
            #expect(scheduled.count == tasks.count)
            #expect(tasks.allSatisfy { $0.trigger == .cron })
            for (earlier, later) in zip(scheduled, scheduled.dropFirst()) { #expect(later - earlier == 1000) }
            #expect(scheduled.allSatisfy { $0 % 1000 == 0 })
            for task in tasks { #expect(task.acceptedAt >= task.scheduledAt!) }
            let status = try await agent.call(.get, "/api2/agent/status.do")
            #expect(status.data?["cron"]?["mode"] == .string("local"))
            #expect((status.data?["cron"]?["fires"]?.intValue ?? 0) >= 3)
        }
    }

    @Test("disabled, offline and draining jobs do not fire; each skip is counted by reason")
    func skips() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { agent in
            #expect(await eventually(seconds: 30) { await agent.agent.scheduler!.counts.skips["job_disabled", default: 0] >= 2 })
            #expect(try agent.agent.store.tasks(job: "c.off").isEmpty)

            try await agent.agent.runner.setCanSchedule(false, job: "c.every")
            let firesBefore = await agent.agent.scheduler!.counts.fires
            #expect(await eventually(seconds: 30) { await agent.agent.scheduler!.counts.skips["worker_offline", default: 0] >= 2 })
            await agent.agent.runner.setDraining(true)
            #expect(await eventually(seconds: 30) { await agent.agent.scheduler!.counts.skips["draining", default: 0] >= 2 })
            #expect(await agent.agent.scheduler!.counts.fires <= firesBefore + 1)
            let status = try await agent.call(.get, "/api2/agent/status.do")
            #expect((status.data?["cron"]?["skips"]?["draining"]?.intValue ?? 0) >= 2)
            #expect(status.data?["draining"] == .bool(true))
        }
    }

    @Test("nextRun in job info is the exact next fire; 0 for no cron or one that never fires again")
    func nextRun() async throws {
        try await InProcessAgent.with(jobs: Self.jobs, agentExtra: #"timezone = "Asia/Shanghai""#) { agent in
            let before = Date()
            let info = try await agent.call(.get, "/api2/jobs/c.daily.do")
            let next = try #require(info.data?["nextRun"]?.intValue)
            let date = Date(timeIntervalSince1970: Double(next) / 1000)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
            let parts = calendar.dateComponents([.hour, .minute, .second, .nanosecond], from: date)
            #expect([parts.hour, parts.minute, parts.second] == [9, 30, 0])
            #expect(next % 1000 == 0)
            #expect(date > before.addingTimeInterval(-2))
            #expect(date.timeIntervalSince(before) <= 86_400)
            #expect(info.data?["cron"] == .string("0 30 9 * * ?"))
            #expect(try await agent.call(.get, "/api2/jobs/c.past.do").data?["nextRun"] == .int(0))
            #expect(try await agent.call(.get, "/api2/jobs/c.plain.do").data?["nextRun"] == .int(0))
        }
    }

    static let minutely = """
        [[job]]
        name = "m.skip"
        cron = "0 * * * * ?"
        command = ["/bin/true"]
        misfire = "skip"

        [[job]]
        name = "m.once"
        cron = "0 * * * * ?"
        command = ["/bin/true"]
        misfire = "fire_once"

        [[job]]
        name = "m.new"
        cron = "0 * * * * ?"
        command = ["/bin/true"]
        misfire = "fire_once"

        """

    @Test("after downtime: misfire = fire_once fires once at start, skip fires nothing; a job never fired before has nothing missed")
    func misfireAfterDowntime() async throws {
        let tenMinutesAgo = (Date().epochMilliseconds / 60_000 - 10) * 60_000
        try await InProcessAgent.with(jobs: Self.minutely, prepare: { dir in
            let store = try AgentStore(dataDirectory: dir)
            try await store.setLastFire(tenMinutesAgo, job: "m.skip")
            try await store.setLastFire(tenMinutesAgo, job: "m.once")
            try store.close()
        }) { agent in
            #expect(try await eventually(seconds: 10) { try agent.agent.store.tasks(job: "m.once").count == 1 })
            let once = try agent.agent.store.tasks(job: "m.once")
            #expect(once.first?.scheduledAt == tenMinutesAgo + 60_000)
            #expect(once.first?.trigger == .cron)
            try await Task.sleep(for: .milliseconds(300))
            let now = Date().epochMilliseconds
            // Only fires due since start may have happened: none for a job that fires on whole minutes,
            // unless a minute boundary passed during the test.
            #expect(try agent.agent.store.tasks(job: "m.skip").allSatisfy { $0.scheduledAt! > now - 5_000 })
            #expect(try agent.agent.store.tasks(job: "m.new").allSatisfy { $0.scheduledAt! > now - 5_000 })
            #expect(try agent.agent.store.tasks(job: "m.once").count(where: { $0.scheduledAt! < now - 5_000 }) == 1)
            // m.skip is settled after m.once (jobs in name order): waited for, not assumed done.
            #expect(await eventually { await agent.agent.scheduler!.counts.skips["misfire"] == 1 })
            #expect(try await eventually { try agent.agent.store.jobState("m.skip").lastFire ?? 0 >= tenMinutesAgo + 60_000 })
        }
    }

    @Test("the fire queue hands out entries in time order")
    func fireQueue() {
        var queue = FireQueue()
        var generator = CronExpressionTests.Random(state: 99)
        var times: [Int64] = []
        for index in 0..<500 {
            let time = Int64.random(in: 0...10_000, using: &generator)
            times.append(time)
            queue.insert(.init(time: time, job: "j\(index)"))
        }
        var out: [Int64] = []
        while let entry = queue.removeFirst() { out.append(entry.time) }
        #expect(out == times.sorted())
    }
}
