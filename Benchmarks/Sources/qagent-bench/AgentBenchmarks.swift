import Foundation
import Logging
import QScheduleAgent

/// Builds an agent in a temporary folder with `jobs` and runs its runner and scheduler
/// (no HTTP) for the duration of `body`.
func withBenchAgent(jobs: String, durability: AgentStore.Durability = .full, _ body: (Agent) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let text = "[agent]\ntoken = \"bench-token-0123456789\"\ndata_dir = \"\(dir)\"\nmax_running = 1000\nmax_queued = 10000\n" + jobs
    var config = try ConfigLoader.parse(text, baseDirectory: dir)
    config.agent.journalDurability = durability
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let agent = try Agent(config: config, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await agent.runner.run() }
        if let scheduler = agent.scheduler { group.addTask { try await scheduler.run() } }
        try await body(agent)
        group.cancelAll()
    }
}

/// CPU time (user + system) of this process, in milliseconds.
func processCPUMilliseconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func ms(_ time: timeval) -> Double { Double(time.tv_sec) * 1000 + Double(time.tv_usec) / 1000 }
    return ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Idle CPU of an agent holding many cron jobs between fires, against the same agent with none.
enum IdleCPUBenchmark {
    static func run(jobs: Int, seconds: Int) async throws {
        // Every job fires daily at a time at least 6 hours away: none fires during the window.
        let hour = (Calendar.current.component(.hour, from: Date()) + 6) % 24
        var text = ""
        for index in 0..<jobs {
            text += "[[job]]\nname = \"idle.\(index)\"\ncron = \"\(index % 60) \(index / 60 % 60) \(hour) * * ?\"\ncommand = [\"/bin/true\"]\n"
        }
        print("idle CPU between fires over \(seconds) s (process user+sys CPU, ms per second of wall time)")
        let baseline = try await measure(jobs: "", seconds: seconds)
        let loaded = try await measure(jobs: text, seconds: seconds)
        print(CronNextBenchmark.pad("agent with 0 cron jobs (baseline)", 44) + String(format: "%.3f ms/s", baseline))
        print(CronNextBenchmark.pad("agent with \(jobs) cron jobs", 44) + String(format: "%.3f ms/s", loaded))
        print("target: near zero (well under 10 ms/s, i.e. 1% of a core)")
    }

    static func measure(jobs: String, seconds: Int) async throws -> Double {
        var result = 0.0
        try await withBenchAgent(jobs: jobs) { _ in
            try await Task.sleep(for: .seconds(2))  // let start-up work settle
            let cpu = processCPUMilliseconds()
            let start = Date()
            try await Task.sleep(for: .seconds(seconds))
            result = (processCPUMilliseconds() - cpu) / Date().timeIntervalSince(start)
        }
        return result
    }
}

/// How late cron fires are dispatched (accepted time - scheduled time), against how late a
/// plain sleep-until-the-next-second loop wakes.
enum LatenessBenchmark {
    static func run(jobs: Int, seconds: Int) async throws {
        var text = ""
        for index in 0..<jobs {
            text += "[[job]]\nname = \"late.\(index)\"\ncron = \"* * * * * ?\"\ncommand = [\"/bin/true\"]\noverlap = \"concurrent\"\nmax_concurrency = 4\n"
        }
        print("fire lateness over \(seconds) s: \(jobs) jobs firing every second")
        async let baselineSamples = baseline(seconds: seconds)
        var samples: [Int64] = []
        try await withBenchAgent(jobs: text) { agent in
            try await Task.sleep(for: .seconds(seconds))
            for index in 0..<jobs {
                for task in try agent.store.tasks(job: "late.\(index)") {
                    if let scheduled = task.scheduledAt { samples.append(task.acceptedAt - scheduled) }
                }
            }
        }
        let base = try await baselineSamples
        print(CronNextBenchmark.pad("", 44) + CronNextBenchmark.pad("p50 ms", 10) + CronNextBenchmark.pad("p99 ms", 10) + CronNextBenchmark.pad("max ms", 10) + "samples")
        print(row("sleep-until-next-second loop (baseline)", base))
        print(row("qagent cron fires (scheduled -> dispatched)", samples))
        print("target: p99 < 50 ms")
    }

    static func baseline(seconds: Int) async throws -> [Int64] {
        var samples: [Int64] = []
        let end = Date().addingTimeInterval(Double(seconds))
        var target = (Date().timeIntervalSince1970 + 1).rounded(.down)
        while Date() < end {
            // Sleep until the next whole second of the wall clock, as the scheduler does.
            while Date().timeIntervalSince1970 < target {
                try await Task.sleep(for: .seconds(target - Date().timeIntervalSince1970))
            }
            samples.append(Int64(((Date().timeIntervalSince1970 - target) * 1000).rounded(.down)))
            target += 1
        }
        return samples
    }

    static func row(_ name: String, _ samples: [Int64]) -> String {
        let sorted = samples.sorted()
        func percentile(_ p: Double) -> String {
            guard !sorted.isEmpty else { return "-" }
            return String(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
        }
        return CronNextBenchmark.pad(name, 44) + CronNextBenchmark.pad(percentile(0.5), 10) + CronNextBenchmark.pad(percentile(0.99), 10)
            + CronNextBenchmark.pad(sorted.last.map(String.init) ?? "-", 10) + String(sorted.count)
    }
}
