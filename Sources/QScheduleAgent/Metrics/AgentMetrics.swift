import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// The agent's metrics, recorded through swift-metrics into this agent's own Prometheus
/// registry and served by `GET /metrics` in the Prometheus text format.
///
/// Each agent owns its registry (nothing process-global is bootstrapped), so an embedding
/// application and in-process tests can run several agents. Labels are bounded: jobs come
/// from the configuration, reasons and states from fixed lists, routes from the route table.
public final class AgentMetrics: Sendable {
    /// The registry `GET /metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Jobs whose running/queued gauges were set: set to 0 when they go idle.
    private let gaugedJobs = Mutex<Set<String>>([])

    /// Upper bounds of the task duration histogram (seconds).
    static let taskDurationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
    ]
    /// Upper bounds of the journal commit histogram (seconds).
    static let commitBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    public init(version: String = AgentVersion.current) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "qagent_task_duration_seconds": Self.taskDurationBuckets,
            "qagent_journal_commit_seconds": Self.commitBuckets,
        ]
        self.factory = factory
        Gauge(label: "qagent_build_info", dimensions: [("version", version)], factory: factory).record(1)
        Gauge(label: "qagent_start_time_seconds", factory: factory).record(Date().timeIntervalSince1970)
    }

    // MARK: Recording

    /// A task ended (ran, or was settled without running): counted by job and state, its
    /// run time observed when it ran.
    func taskFinished(job: String, result: TaskResult, durationMs: Int64?) {
        Counter(label: "qagent_tasks_finished_total", dimensions: [("job", job), ("state", result.metricName)], factory: factory).increment()
        if let durationMs {
            Timer(label: "qagent_task_duration_seconds", dimensions: [("job", job)], factory: factory)
                .recordNanoseconds(durationMs * 1_000_000)
        }
    }

    /// A failed or timed-out task queued again as its next attempt (`retries`).
    func taskRetried(job: String) {
        Counter(label: "qagent_task_retries_total", dimensions: [("job", job)], factory: factory).increment()
    }

    /// A dispatch (HTTP, cron, cluster) refused, by its documented reason.
    func dispatchRefused(reason: String) {
        Counter(label: "qagent_dispatch_refusals_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// A cron fire that created a task.
    func cronFired(job: String) {
        Counter(label: "qagent_cron_fires_total", dimensions: [("job", job)], factory: factory).increment()
    }

    /// A cron fire that created no task, by reason (`missed`, `job_busy`, `draining`, ...).
    func cronSkipped(job: String, reason: String) {
        Counter(label: "qagent_cron_skips_total", dimensions: [("job", job), ("reason", reason)], factory: factory).increment()
    }

    /// An alert event raised for a job (`alert_after_failures`).
    func alertRaised(job: String) {
        Counter(label: "qagent_alerts_total", dimensions: [("job", job)], factory: factory).increment()
    }

    /// A journal transaction committed after `duration`.
    func journalCommitted(after duration: Duration) {
        Timer(label: "qagent_journal_commit_seconds", factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    /// An HTTP request answered: `route` is the route's pattern (bounded), never the raw path.
    func httpRequest(method: String, route: String, status: Int) {
        httpRequestCounter(method: method, route: route, status: status).increment()
    }

    /// The counter of one method, route and status, for a caller that counts the same series
    /// many times (the event loop's idle `/api/check`, per connection).
    func httpRequestCounter(method: String, route: String, status: Int) -> CoreMetrics.Counter {
        Counter(
            label: "qagent_http_requests_total", dimensions: [("method", method), ("route", route), ("status", "\(status)")], factory: factory)
    }

    // MARK: Scrape

    /// What is read at scrape time rather than counted as it happens.
    struct Snapshot {
        var active: [TaskRunner.ActiveJob]
        var outboxDepth: Int
        /// Accepted-at of the oldest undelivered report entry, epoch ms.
        var outboxOldest: Int64?
        var clusterOutboxDepth: Int?
        var draining: Bool
    }

    /// The text exposition (format 0.0.4) with the gauges read from `snapshot`.
    func render(_ snapshot: Snapshot, now: Int64 = Date().epochMilliseconds) -> String {
        let names = Set(snapshot.active.map(\.name))
        let idle = gaugedJobs.withLock { gauged in
            defer { gauged = names }
            return gauged.subtracting(names)
        }
        for job in snapshot.active {
            Gauge(label: "qagent_tasks_running", dimensions: [("job", job.name)], factory: factory).record(Double(job.running))
            Gauge(label: "qagent_tasks_queued", dimensions: [("job", job.name)], factory: factory).record(Double(job.queued))
        }
        for name in idle {
            Gauge(label: "qagent_tasks_running", dimensions: [("job", name)], factory: factory).record(0)
            Gauge(label: "qagent_tasks_queued", dimensions: [("job", name)], factory: factory).record(0)
        }
        Gauge(label: "qagent_outbox_depth", factory: factory).record(Double(snapshot.outboxDepth))
        Gauge(label: "qagent_outbox_oldest_age_seconds", factory: factory)
            .record(snapshot.outboxOldest.map { Double(max(0, now - $0)) / 1000 } ?? 0)
        if let depth = snapshot.clusterOutboxDepth {
            Gauge(label: "qagent_cluster_outbox_depth", factory: factory).record(Double(depth))
        }
        Gauge(label: "qagent_draining", factory: factory).record(snapshot.draining ? 1 : 0)
        return registry.emitToString()
    }
}

extension TaskResult {
    /// The `state` label of task metrics and logs.
    var metricName: String {
        switch self {
        case .none: return "none"
        case .succeeded: return "succeeded"
        case .killed: return "killed"
        case .failed: return "failed"
        case .lost: return "lost"
        case .timedOut: return "timed_out"
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
