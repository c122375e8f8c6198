import Foundation
import QScheduleAgent
import Subprocess

/// Per-task cost of running `/bin/true` through the agent (admission, journal commits with
/// synchronous=FULL, process group, log pipe, completion) against a plain spawn-and-wait loop,
/// both at the same parallelism. A third run with the journal unsynced shows how much of the
/// difference is the fsync of the task's start, which must be durable before the spawn.
enum ExecutionBenchmark {
    static func run(tasks: Int, parallelism: Int) async throws {
        print("\(tasks) /bin/true tasks at parallelism \(parallelism)")
        var cpu = processCPUMilliseconds()
        let plain = try await plainLoop(tasks: tasks, parallelism: parallelism)
        let plainCPU = processCPUMilliseconds() - cpu
        cpu = processCPUMilliseconds()
        let agent = try await throughAgent(tasks: tasks, parallelism: parallelism, durability: .full)
        let agentCPU = processCPUMilliseconds() - cpu
        cpu = processCPUMilliseconds()
        let unsynced = try await throughAgent(tasks: tasks, parallelism: parallelism, durability: .unsafeNoSync)
        let unsyncedCPU = processCPUMilliseconds() - cpu
        print(CronNextBenchmark.pad("", 52) + CronNextBenchmark.pad("total s", 10) + CronNextBenchmark.pad("per task ms", 14) + "agent-process CPU per task ms")
        func line(_ name: String, _ seconds: Double, _ cpu: Double) {
            print(CronNextBenchmark.pad(name, 52) + CronNextBenchmark.pad(String(format: "%.2f", seconds), 10)
                + CronNextBenchmark.pad(String(format: "%.3f", seconds * 1000 / Double(tasks)), 14) + String(format: "%.3f", cpu / Double(tasks)))
        }
        line("plain spawn-and-wait loop (baseline)", plain, plainCPU)
        line("through the agent (dispatch -> finished)", agent, agentCPU)
        line("  same, journal without fsync (comparison only)", unsynced, unsyncedCPU)
        print(String(format: "ratio agent / plain: %.2fx (goal <= 1.3x); without fsync: %.2fx", agent / plain, unsynced / plain))
    }

    static func plainLoop(tasks: Int, parallelism: Int) async throws -> Double {
        let start = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<parallelism {
                group.addTask {
                    for _ in stride(from: worker, to: tasks, by: parallelism) {
                        var options = PlatformOptions()
                        options.createSession = true
                        _ = try await Subprocess.run(.path("/bin/true"), platformOptions: options, output: .discarded)
                    }
                }
            }
            try await group.waitForAll()
        }
        return Date().timeIntervalSince(start)
    }

    static func throughAgent(tasks: Int, parallelism: Int, durability: AgentStore.Durability) async throws -> Double {
        let jobs = "[[job]]\nname = \"bench.true\"\ncommand = [\"/bin/true\"]\noverlap = \"concurrent\"\nmax_concurrency = \(parallelism)\nmax_queued = \(tasks)\n"
        var elapsed = 0.0
        try await withBenchAgent(jobs: jobs, durability: durability) { agent in
            let start = Date()
            for _ in 0..<tasks {
                guard case .accepted = await agent.runner.dispatch(job: "bench.true", param: .object([:])) else {
                    fatalError("dispatch refused")
                }
            }
            while await agent.runner.counts != (0, 0) {
                try await Task.sleep(for: .milliseconds(2))
            }
            elapsed = Date().timeIntervalSince(start)
            let journal = agent.store.journalStatistics
            print(String(format: "journal (\(durability == .full ? "fsync" : "no fsync")): %.2f transactions and %.2f writes per task", Double(journal.transactions) / Double(tasks), Double(journal.writes) / Double(tasks)))
            let finished = try agent.store.tasks(job: "bench.true").filter { $0.result == .succeeded }.count
            precondition(finished == tasks, "only \(finished) of \(tasks) succeeded")
        }
        return elapsed
    }
}
