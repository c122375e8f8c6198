import Foundation
import Logging
import PostgresNIO

/// `POST /api2/tasks.do` in cluster mode (DESIGN §10, dispatch): the task is created in the
/// cluster's database — `ret:true` means PostgreSQL committed it — and admitted per the job's
/// cluster-wide overlap policy to an online, non-draining worker that serves the job with
/// `canSchedule` (or to the pinned `worker`), which is notified. A repeated `taskId` with the
/// same job and param answers the same; with another job or param it is `task_id_conflict`.
struct ClusterDispatcher: Sendable {
    let admission: ClusterAdmission
    let runner: TaskRunner
    let logger: Logger

    func dispatch(job: String, param: JSONValue, taskID requested: String?, worker pinned: String?) async -> DispatchResult {
        var generated = requested ?? ""
        if requested == nil { generated = await runner.newTaskID() }
        let task = ClusterAdmission.NewTask(id: generated, job: job, param: param.jsonText, pinned: pinned)
        do {
            // Answered within 5 s: a database that is down must not hold the caller.
            let outcome = try await ClusterDatabase.withTimeout(5, what: "dispatch") { [admission] in
                try await admission.create(task)
            }
            switch outcome {
            case .created:
                return .accepted(taskID: task.id)
            case .exists(let existingJob, let existingParam):
                return existingJob == job && existingParam == task.param ? .accepted(taskID: task.id) : .refused(.taskIDConflict)
            case .refused(let reason):
                return .refused(reason)
            }
        } catch {
            logger.error("cluster dispatch failed", metadata: [
                "job": "\(job)", "error": "\(ClusterError.describing(error, "dispatch", settings: admission.database.settings))",
            ])
            return .clusterUnavailable
        }
    }
}
