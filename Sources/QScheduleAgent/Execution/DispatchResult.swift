/// Why a task was not accepted. The raw value is the `reason` of a `ret:false` answer.
public enum RefusalReason: String, Sendable, Equatable {
    case jobNotFound = "job_not_found"
    case jobDisabled = "job_disabled"
    case draining
    case workerOffline = "worker_offline"
    /// The host's or the job's queue is full.
    case overloaded
    /// `overlap = "discard"` and a task of the job is active.
    case jobBusy = "job_busy"
    /// The report outbox (with the reports that active tasks will add) is at `outbox_max`:
    /// back-pressure until the receiver takes reports again.
    case outboxFull = "outbox_full"
    /// The caller-given task id belongs to a task of another job.
    case taskIDConflict = "task_id_conflict"
    /// Cluster mode: the pinned `worker` is not an online member serving the job.
    case unknownWorker = "unknown_worker"
}

/// The answer to a dispatch (`POST /api2/tasks.do`) or a local fire.
public enum DispatchResult: Sendable, Equatable {
    /// Journaled (or already journaled under this caller-given id): the task will run once.
    case accepted(taskID: String)
    /// Not accepted; nothing was journaled.
    case refused(RefusalReason)
    /// The journal could not commit the task; nothing was accepted.
    case journalFailed
    /// Cluster mode: the cluster's database could not be reached; nothing was accepted.
    case clusterUnavailable
}
