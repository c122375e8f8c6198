import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Carries finished tasks' results from the local `cluster_outbox` into the cluster's task rows
/// (DESIGN §10, results): at-least-once, in batches of up to 100, idempotent by task id and
/// attempt (a row already holding a later attempt is left alone), with the jobs' `last*`
/// fields; then the jobs' freed slots admit their next tasks. The local entries are
/// removed only once PostgreSQL committed them, so a crash or a database outage loses nothing.
final class ClusterResultSink: Service, Sendable {
    private let database: ClusterDatabase
    private let admission: ClusterAdmission
    private let store: AgentStore
    private let logger: Logger
    static let batch = 100

    init(admission: ClusterAdmission, store: AgentStore, logger: Logger) {
        self.database = admission.database
        self.admission = admission
        self.store = store
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let sent = try await self.deliverBatch()
                    failures = 0
                    if sent == Self.batch { continue }
                    try? await Task.sleep(for: .milliseconds(250))
                } catch {
                    failures += 1
                    if failures == 1 || failures.isMultiple(of: 20) {
                        self.logger.error("cluster results not delivered; kept locally", metadata: [
                            "error": "\(ClusterError.describing(error, "results", settings: self.database.settings))", "failures": "\(failures)",
                        ])
                    }
                    try? await Task.sleep(for: .seconds(min(30, 1 << min(failures, 5))))
                }
            }
        }
        // Shutting down (after the runner stopped): what is left goes now, within 5 s.
        _ = try? await ClusterDatabase.withTimeout(5, what: "final results") { [self] in
            while try await self.deliverBatch() > 0 {}
        }
    }

    /// Delivers the oldest batch; returns how many results it held.
    @discardableResult
    func deliverBatch() async throws -> Int {
        let results = try store.clusterOutboxBatch(limit: Self.batch)
        guard let last = results.last else { return 0 }
        let ids = results.map(\.taskID)
        let states = results.map(\.result)
        let attempts = results.map(\.attempt)
        let starts = results.map(\.startTime)
        let ends = results.map(\.endTime)
        let durations = results.map(\.duration)
        let messages = results.map(\.message)
        // The task rows (a row holding a later attempt is left alone), then the jobs' last*
        // fields from the newest result of each (never moving them back in time).
        let rows = try await database.client.query("""
            WITH r AS (
                SELECT * FROM unnest(\(ids)::text[], \(states)::integer[], \(attempts)::integer[], \(starts)::bigint[],
                    \(ends)::bigint[], \(durations)::bigint[], \(messages)::text[])
                    AS r(id, result, attempt, start_time, end_time, duration, message)
            ), done AS (
                UPDATE qagent_task t SET status = 'finished', result = r.result, attempt = r.attempt, start_time = r.start_time,
                    end_time = r.end_time, duration = r.duration, message = r.message
                FROM r WHERE t.id = r.id AND t.attempt <= r.attempt
                RETURNING t.job, r.result, r.start_time, r.end_time, r.duration
            ), latest AS (
                SELECT DISTINCT ON (job) * FROM done ORDER BY job, end_time DESC
            ), jobs AS (
                UPDATE qagent_job j SET last_run = l.start_time, last_state = l.result, last_duration = l.duration, last_update = l.end_time
                FROM latest l WHERE j.job = l.job AND j.last_update <= l.end_time
            )
            SELECT job FROM latest l WHERE EXISTS (SELECT 1 FROM qagent_task p WHERE p.job = l.job AND p.status = 'pending')
            """, logger: logger)
        var jobs: [String] = []
        for try await job in rows.decode(String.self) { jobs.append(job) }
        try await store.deleteClusterOutbox(upTo: last.seq)
        // Their slots are free: the jobs with waiting tasks admit the next ones.
        for job in jobs { try await admission.admit(job: job) }
        return results.count
    }
}
