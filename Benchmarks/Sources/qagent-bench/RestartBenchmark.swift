import Foundation
import Logging
import QScheduleAgent

/// Time from start to listening after a crash that left many tasks unfinished (leftovers of
/// several earlier agent instances), beside a clean start of the same agent.
enum RestartBenchmark {
    static func run(leftovers: Int, instances: Int, repeats: Int) async throws {
        print("start to listening, \(leftovers) leftover tasks (half retry, half discard) of \(instances) earlier agent instances; median of \(repeats)")
        var clean: [Double] = []
        var crashed: [Double] = []
        for _ in 0..<repeats {
            clean.append(try await timeToListen(leftovers: 0, instances: 0))
            crashed.append(try await timeToListen(leftovers: leftovers, instances: instances))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        print(CronNextBenchmark.pad("clean start (baseline)", 44) + String(format: "%8.0f ms", median(clean)))
        print(CronNextBenchmark.pad("after a crash with \(leftovers) leftovers", 44) + String(format: "%8.0f ms", median(crashed)))
        print(String(format: "difference: %.0f ms (goal: after a crash <= 1000 ms)", median(crashed) - median(clean)))
    }

    static let jobs = """
        [[job]]
        name = "bench.retry"
        command = ["/bin/true"]
        recover = "retry"
        overlap = "concurrent"
        max_concurrency = 8
        [[job]]
        name = "bench.discard"
        command = ["/bin/true"]
        recover = "discard"

        """

    /// Prepares a data_dir as a crashed agent would leave it, then times a new agent from
    /// construction to its HTTP interface listening.
    static func timeToListen(leftovers: Int, instances: Int) async throws -> Double {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        if leftovers > 0 { try await prepare(dataDirectory: dir, leftovers: leftovers, instances: instances) }
        let text = """
            [agent]
            token = "bench-token-0123456789"
            listen = "127.0.0.1:0"
            data_dir = "\(dir)"
            kill_grace = 1

            """ + jobs
        let config = try ConfigLoader.parse(text, baseDirectory: dir)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let start = ContinuousClock.now
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Duration.self)
        let running = Task {
            let agent = try Agent(config: config, logger: logger)
            try await agent.run { _ in readyContinuation.yield(ContinuousClock.now - start) }
        }
        var elapsed = Duration.zero
        for await value in ready {
            elapsed = value
            break
        }
        running.cancel()
        _ = await running.result
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// Writes `leftovers` tasks journaled as running, with dead recorded pids, spread over
    /// `instances` earlier agent instances (as kill -9 of an agent leaves them).
    static func prepare(dataDirectory: String, leftovers: Int, instances: Int) async throws {
        let store = try AgentStore(dataDirectory: dataDirectory, durability: .unsafeNoSync)
        let instanceIDs = (0..<instances).map { _ in UUID().uuidString }
        for instance in instanceIDs { try store.registerInstance(instance) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<leftovers {
                group.addTask {
                    let id = "leftover-\(index)"
                    try await store.insertTask(TaskRecord(
                        id: id, job: index.isMultiple(of: 2) ? "bench.retry" : "bench.discard", param: "{}", trigger: .dispatch, acceptedAt: 1000))
                    try await store.markRunning(id, attempt: 1, startTime: 2000)
                    // A pid above any live one: the process is gone, as after a reboot or once it exited.
                    store.recordProcessSoon(id, process: ProcessIdentity(pid: Int32(4_000_000 + index % 100_000), startTicks: 1, instance: instanceIDs[index % instances]))
                }
            }
            try await group.waitForAll()
        }
        try await store.setLastFire(0, job: "bench.retry")  // flushes the last queued writes
        try store.close()
    }
}
