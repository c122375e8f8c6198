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
    var running: Int
    var queued: Int
    var cron: Cron
}
