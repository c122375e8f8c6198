import Foundation
import Logging
import PostgresNIO

/// `POST /api2/tasks.do` in cluster mode (DESIGN §10, dispatch): the task is created in the
/// cluster's database — `ret:true` means PostgreSQL committed it — assigned in the same
/// statement to a random online, non-draining worker that serves the job with `canSchedule`
/// (or to the pinned `worker`), and that worker is notified. A repeated `taskId` with the same
/// job and param answers the same; with another job or param it is `task_id_conflict`.
struct ClusterDispatcher: Sendable {
    let database: ClusterDatabase
    let runner: TaskRunner
    let logger: Logger

    func dispatch(job: String, param: JSONValue, taskID requested: String?, worker pinned: String?) async -> DispatchResult {
        var generated = requested ?? ""
        if requested == nil { generated = await runner.newTaskID() }
        let id = generated
        let paramText = param.jsonText
        let deadAfter = database.settings.deadAfter
        do {
            // Answered within 5 s: a database that is down must not hold the caller.
            return try await ClusterDatabase.withTimeout(5, what: "dispatch") { [database, logger] in
            let rows = try await database.client.query("""
                WITH serving AS (
                    SELECT m.address, j.can_schedule, m.draining, m.heartbeat_at > now() - make_interval(secs => \(deadAfter)) AS online
                    FROM qagent_member m JOIN qagent_member_job j ON j.address = m.address WHERE j.job = \(job)
                ), chosen AS (
                    SELECT address FROM serving WHERE online AND can_schedule AND NOT draining
                        AND (\(pinned)::text IS NULL OR address = \(pinned)::text)
                    ORDER BY random() LIMIT 1
                ), existing AS (
                    SELECT job, param FROM qagent_task WHERE id = \(id)
                ), inserted AS (
                    INSERT INTO qagent_task (id, job, param, worker, status)
                    SELECT \(id), \(job), \(paramText), address, 'assigned' FROM chosen WHERE NOT EXISTS (SELECT 1 FROM existing)
                    ON CONFLICT (id) DO NOTHING
                    RETURNING worker
                ), notified AS (
                    SELECT pg_notify('qagent_task', worker) FROM inserted
                )
                SELECT (SELECT count(*) FROM serving)::bigint, (SELECT count(*) FROM serving WHERE \(pinned)::text IS NULL OR address = \(pinned)::text)::bigint,
                    (SELECT count(*) FROM inserted)::bigint, (SELECT count(*) FROM notified)::bigint,
                    (SELECT job FROM existing), (SELECT param FROM existing)
                """, logger: logger)
            for try await (serving, pinnedServing, inserted, _, existingJob, existingParam) in rows.decode((Int64, Int64, Int64, Int64, String?, String?).self) {
                if let existingJob {
                    return existingJob == job && existingParam == paramText ? .accepted(taskID: id) : .refused(.taskIDConflict)
                }
                if inserted == 1 { return .accepted(taskID: id) }
                if serving == 0 { return .refused(.jobNotFound) }
                if pinned != nil, pinnedServing == 0 { return .refused(.unknownWorker) }
                return .refused(.workerOffline)
            }
            return .clusterUnavailable
            }
        } catch {
            logger.error("cluster dispatch failed", metadata: [
                "job": "\(job)", "error": "\(ClusterError.describing(error, "dispatch", settings: database.settings))",
            ])
            return .clusterUnavailable
        }
    }
}
