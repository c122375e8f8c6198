import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Fires the cluster's cron jobs (DESIGN §10, exactly-once fires): each fire is a task row
/// whose id is `<job>:<scheduled ms>`, unique on (job, scheduled time), inserted in the same
/// statement that picks its worker at random among the online, non-draining members that
/// serve the job with `canSchedule`, and that notifies that worker. One agent per job fires
/// (the first in rendezvous order), the second a moment later as a backup; both may run, one
/// row results.
final class ClusterFirer: Service, Sendable {
    private let database: ClusterDatabase
    private let view: ClusterView
    private let identity: AgentIdentity
    private let runner: TaskRunner
    private let jobs: [String: CronExpression]
    private let timeZone: TimeZone
    private let logger: Logger
    private let ready = StartGate()
    /// How long after the scheduled time the backup inserts.
    static let backupDelayMs: Int64 = 2_000

    init(database: ClusterDatabase, view: ClusterView, identity: AgentIdentity, runner: TaskRunner, jobs: [JobConfig], timeZone: TimeZone, logger: Logger) {
        self.database = database
        self.view = view
        self.identity = identity
        self.runner = runner
        self.jobs = Dictionary(uniqueKeysWithValues: jobs.compactMap { job in job.cron.map { (job.name, $0) } })
        self.timeZone = timeZone
        self.logger = logger
    }

    /// Called once this agent is a registered member: its address is final.
    func start() {
        ready.open()
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            await self.fireLoop()
        }
    }

    private func fireLoop() async {
        var queue = FireQueue()
        let now = Date()
        for (name, cron) in jobs {
            if let next = cron.next(after: now, in: timeZone) { queue.insert(.init(time: next.epochMilliseconds, job: name)) }
        }
        while !Task.isCancelled {
            let now = Date().epochMilliseconds
            guard let first = queue.first else {
                // Nothing (more) to fire: a service must not end before the agent does.
                try? await gracefulShutdown()
                return
            }
            guard first.time <= now else {
                try? await Task.sleep(for: .milliseconds(max(1, min(first.time - now, 30_000))))
                continue
            }
            let entry = queue.removeFirst()!
            switch view.fireRank(job: entry.job, address: identity.address) {
            case 0:
                Task { await self.fire(job: entry.job, scheduledAt: entry.time) }
            case 1:
                Task {
                    try await Task.sleep(for: .milliseconds(Self.backupDelayMs))
                    await self.fire(job: entry.job, scheduledAt: entry.time)
                }
            default:
                break
            }
            if let cron = jobs[entry.job], let next = cron.next(after: Date(timeIntervalSince1970: Double(entry.time) / 1000), in: timeZone) {
                queue.insert(.init(time: next.epochMilliseconds, job: entry.job))
            }
        }
    }

    /// Inserts the fire (nothing when it exists), picking and notifying its worker.
    func fire(job: String, scheduledAt: Int64) async {
        guard await runner.isEnabled(job) == true else { return }
        let id = "\(job):\(scheduledAt)"
        let deadAfter = database.settings.deadAfter
        do {
            try await database.client.query("""
                WITH chosen AS (
                    SELECT m.address FROM qagent_member m JOIN qagent_member_job j ON j.address = m.address
                    WHERE j.job = \(job) AND j.can_schedule AND NOT m.draining
                        AND m.heartbeat_at > now() - make_interval(secs => \(deadAfter))
                    ORDER BY random() LIMIT 1
                ), inserted AS (
                    INSERT INTO qagent_task (id, job, scheduled_at, worker, status)
                    SELECT \(id), \(job), \(scheduledAt), (SELECT address FROM chosen),
                        CASE WHEN EXISTS (SELECT 1 FROM chosen) THEN 'assigned' ELSE 'unassigned' END
                    ON CONFLICT (job, scheduled_at) WHERE scheduled_at IS NOT NULL DO NOTHING
                    RETURNING worker
                )
                SELECT pg_notify('qagent_task', worker) FROM inserted WHERE worker IS NOT NULL
                """, logger: logger)
        } catch {
            logger.error("cluster fire failed", metadata: [
                "job": "\(job)", "scheduled": "\(scheduledAt)",
                "error": "\(ClusterError.describing(error, "fire", settings: database.settings))",
            ])
        }
    }
}
