import Foundation
import Logging
import ServiceLifecycle

/// Removes finished tasks and their logs once they are older than `retention_days`
/// (DESIGN §4), at start and then hourly, so the journal and `data_dir/logs` stay bounded.
/// A periodic `Service` that stops on graceful shutdown, like Hummingbird's `DateCache`.
public struct TaskPruner: Service {
    let store: AgentStore
    let logDirectory: String
    let retention: Duration
    let interval: Duration
    let logger: Logger

    public init(store: AgentStore, dataDirectory: String, retentionDays: Int, interval: Duration = .seconds(3600), logger: Logger) {
        self.store = store
        self.logDirectory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("logs").path
        self.retention = .seconds(retentionDays * 86_400)
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await pruneOnce()
                try await Task.sleep(for: interval)
            }
        }
    }

    /// Prunes everything past retention now; returns how many tasks were removed.
    @discardableResult
    public func pruneOnce(now: Date = Date()) async -> Int {
        let cutoff = now.epochMilliseconds - retention.components.seconds * 1000
        var removed = 0
        while true {
            let ids: [String]
            do {
                ids = try await store.pruneFinishedTasks(endedBefore: cutoff)
            } catch {
                logger.error("pruning finished tasks failed", metadata: ["error": "\(error)"])
                return removed
            }
            for id in ids {
                try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: logDirectory).appendingPathComponent("\(id).log").path)
            }
            removed += ids.count
            if ids.count < 1000 { break }
        }
        if removed > 0 { logger.info("pruned finished tasks", metadata: ["count": "\(removed)"]) }
        return removed
    }
}
