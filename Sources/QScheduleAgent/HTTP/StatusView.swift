/// `GET /api2/agent/status.do`: what this agent is doing.
struct StatusView: Encodable, Sendable {
    struct Cron: Encodable, Sendable {
        /// `local` when this agent fires its cron jobs, `central` when `[scheduler] url` drives it.
        var mode: String
        var jobs: Int
        var fires: Int
        /// Skipped fires by reason (`job_disabled`, `worker_offline`, `draining`, `overloaded`, `job_busy`, `misfire`, ...).
        var skips: [String: Int]
    }

    var address: String
    var version: String
    var draining: Bool
    /// When the drain began (epoch ms); absent when not draining.
    var drainingSince: Int64?
    /// A signal was received: the agent is stopping and cannot be resumed.
    var shuttingDown: Bool
    var running: Int
    var queued: Int
    /// Ids of the running tasks, oldest first.
    var runningTasks: [String]
    var cron: Cron
    /// The report outbox and heartbeat; absent without `[report] url`.
    var report: Reporter.Snapshot?
    /// The central scheduler drains are told about; absent without `[scheduler] url`.
    var central: CentralWorkers.Snapshot?
    /// Cluster mode: the cluster as the database shows it; absent standalone.
    var cluster: Cluster?

    struct Cluster: Encodable, Sendable {
        /// Whether the database answered.
        var reachable: Bool
        var members: Int?
        /// Members whose heartbeat is younger than `dead_after`.
        var online: Int?
        var draining: Int?
        /// Cluster tasks waiting for a slot or a worker.
        var pendingTasks: Int?
        /// Cluster tasks assigned to or claimed by a worker.
        var activeTasks: Int?
    }
}

/// `POST /api2/agent/reload.do`'s `data`: what a reload changed.
struct ReloadView: Encodable, Sendable {
    var added: [String]
    var changed: [String]
    var removed: [String]
    /// Keys outside `[[job]]` whose new values wait for a restart.
    var notApplied: [String]

    init(_ outcome: ConfigReloader.Outcome) {
        added = outcome.jobs.added
        changed = outcome.jobs.changed
        removed = outcome.jobs.removed
        notApplied = outcome.notApplied
    }
}
