import Foundation
import Logging
import QScheduleAgent

/// Acknowledged dispatches per second with the durable journal (group commit, fsync per
/// commit) against the same run with fsync off, plus acknowledgement latency percentiles.
enum DispatchBenchmark {
    static func run(dispatches: Int, concurrency: Int) async throws {
        print("\(dispatches) dispatches from \(concurrency) concurrent callers (no-op Swift handler)")
        print(CronNextBenchmark.pad("", 44) + CronNextBenchmark.pad("acks/s", 10) + CronNextBenchmark.pad("p50 ms", 9) + CronNextBenchmark.pad("p99 ms", 9) + "journal writes/transaction")
        let off = try await measure(dispatches: dispatches, concurrency: concurrency, durability: .unsafeNoSync)
        let full = try await measure(dispatches: dispatches, concurrency: concurrency, durability: .full)
        print(row("journal without fsync (baseline)", off))
        print(row("durable journal (synchronous=FULL)", full))
        print(String(format: "ratio durable / no-fsync: %.2f (target >= 0.5)", full.rate / off.rate))
    }

    struct Result {
        var rate: Double
        var latencies: [Double]
        var writesPerTransaction: Double
    }

    static func row(_ name: String, _ result: Result) -> String {
        let sorted = result.latencies.sorted()
        func p(_ q: Double) -> String { String(format: "%.2f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) }
        return CronNextBenchmark.pad(name, 44) + CronNextBenchmark.pad(String(format: "%.0f", result.rate), 10)
            + CronNextBenchmark.pad(p(0.5), 9) + CronNextBenchmark.pad(p(0.99), 9) + String(format: "%.1f", result.writesPerTransaction)
    }

    static func measure(dispatches: Int, concurrency: Int, durability: AgentStore.Durability) async throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
            [agent]
            token = "bench-token-0123456789"
            data_dir = "\(dir)"
            max_running = 256
            max_queued = \(dispatches)
            [[job]]
            name = "bench.noop"
            overlap = "concurrent"
            max_concurrency = 64
            max_queued = \(dispatches)

            """
        var config = try ConfigLoader.parse(text, baseDirectory: dir)
        config.agent.journalDurability = durability
        var handlers = HandlerRegistry()
        handlers.register("bench.noop") { _ in }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let agent = try Agent(config: config, handlers: handlers, logger: logger)
        var result = Result(rate: 0, latencies: [], writesPerTransaction: 0)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await agent.runner.run() }
            let before = agent.store.journalStatistics
            let start = Date()
            let latencies = await withTaskGroup(of: [Double].self) { callers in
                for caller in 0..<concurrency {
                    callers.addTask {
                        var samples: [Double] = []
                        for _ in stride(from: caller, to: dispatches, by: concurrency) {
                            let sent = DispatchTime.now().uptimeNanoseconds
                            guard case .accepted = await agent.runner.dispatch(job: "bench.noop", param: .object([:])) else { fatalError("refused") }
                            samples.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1_000_000)
                        }
                        return samples
                    }
                }
                var all: [Double] = []
                for await samples in callers { all += samples }
                return all
            }
            let elapsed = Date().timeIntervalSince(start)
            let after = agent.store.journalStatistics
            result = Result(
                rate: Double(dispatches) / elapsed, latencies: latencies,
                writesPerTransaction: Double(after.writes - before.writes) / Double(max(1, after.transactions - before.transactions)))
            group.cancelAll()
        }
        return result
    }
}
