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
    /// This worker: recorded with the stale results it sends.
    private let identity: AgentIdentity
    private let logger: Logger
    static let batch = 100

    init(admission: ClusterAdmission, store: AgentStore, identity: AgentIdentity, logger: Logger) {
        self.identity = identity
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
        // A task its worker stopped because its lease expired goes back to the job's waiting
        // tasks as attempt + 1 (recover = "retry", attempts left), as if the worker had died;
        // one that failed (500) or timed out (504) with `retries` left goes back as attempt + 1
        // once its backoff (retry_backoff doubling, at most an hour) is over.
        let fenced = results.map { $0.result == TaskResult.lost.rawValue && $0.message == StopReason.leaseLostMessage }
        let worker = identity.address
        // The task rows (a row holding a later attempt is left alone: that result is recorded
        // as stale), then the jobs' last* fields from the newest result of each (never moving
        // them back in time).
        let rows = try await database.client.query("""
            WITH r AS (
                SELECT * FROM unnest(\(ids)::text[], \(states)::integer[], \(attempts)::integer[], \(starts)::bigint[],
                    \(ends)::bigint[], \(durations)::bigint[], \(messages)::text[], \(fenced)::boolean[])
                    AS r(id, result, attempt, start_time, end_time, duration, message, fenced)
            ), stale AS (
                INSERT INTO qagent_stale_result (task_id, attempt, worker, result, message)
                SELECT r.id, r.attempt, \(worker), r.result, r.message FROM r JOIN qagent_task t ON t.id = r.id WHERE t.attempt > r.attempt
                ON CONFLICT DO NOTHING
            ), done AS (
                UPDATE qagent_task t SET
                    status = CASE WHEN q.again THEN 'pending' ELSE 'finished' END,
                    attempt = CASE WHEN q.again THEN r.attempt + 1 ELSE r.attempt END,
                    result = CASE WHEN q.again THEN t.result ELSE r.result END,
                    start_time = CASE WHEN q.again THEN t.start_time ELSE r.start_time END,
                    end_time = CASE WHEN q.again THEN t.end_time ELSE r.end_time END,
                    duration = CASE WHEN q.again THEN t.duration ELSE r.duration END,
                    message = CASE WHEN q.retry THEN 'retry ' || r.attempt || ' of ' || q.retries || ' after: ' || r.message
                        WHEN q.again THEN t.message ELSE r.message END,
                    not_before = CASE WHEN q.retry THEN now() + make_interval(secs => q.backoff) ELSE NULL END,
                    worker = CASE WHEN q.again THEN NULL ELSE t.worker END,
                    refused_by = CASE WHEN q.again THEN t.worker ELSE t.refused_by END,
                    claimed_at = CASE WHEN q.again THEN NULL ELSE t.claimed_at END,
                    assigned_at = CASE WHEN q.again THEN NULL ELSE t.assigned_at END,
                    pinned = CASE WHEN q.again THEN NULL ELSE t.pinned END
                FROM r JOIN LATERAL (
                    SELECT f.fenced_again OR f.retry AS again, f.retry, f.retries,
                        least(f.retry_backoff * power(2, greatest(r.attempt - 1, 0)), \(JobConfig.retryBackoffCap))::double precision AS backoff
                    FROM (
                        SELECT r.fenced AND coalesce(j.definition->>'recover', 'retry') = 'retry'
                                AND r.attempt < coalesce((j.definition->>'maxAttempts')::int, 3) AS fenced_again,
                            NOT r.fenced AND r.result IN (500, 504) AND r.attempt <= coalesce((j.definition->>'retries')::int, 0) AS retry,
                            coalesce((j.definition->>'retries')::int, 0) AS retries,
                            coalesce((j.definition->>'retryBackoff')::int, 10) AS retry_backoff
                        FROM qagent_task x LEFT JOIN qagent_job j ON j.job = x.job WHERE x.id = r.id
                    ) AS f
                ) AS q ON true
                WHERE t.id = r.id AND t.attempt <= r.attempt
                RETURNING t.job, q.again, r.result, r.start_time, r.end_time, r.duration
            ), latest AS (
                SELECT DISTINCT ON (job) * FROM done WHERE NOT again ORDER BY job, end_time DESC
            ), jobs AS (
                UPDATE qagent_job j SET last_run = l.start_time, last_state = l.result, last_duration = l.duration, last_update = l.end_time
                FROM latest l WHERE j.job = l.job AND j.last_update <= l.end_time
            )
            SELECT DISTINCT d.job FROM done d WHERE d.again OR EXISTS (SELECT 1 FROM qagent_task p WHERE p.job = d.job AND p.status = 'pending')
            """, logger: logger)
        var jobs: [String] = []
        for try await job in rows.decode(String.self) { jobs.append(job) }
        try await store.deleteClusterOutbox(upTo: last.seq)
        // Their slots are free: the jobs with waiting tasks admit the next ones.
        for job in jobs { try await admission.admit(job: job) }
        return results.count
    }
}
