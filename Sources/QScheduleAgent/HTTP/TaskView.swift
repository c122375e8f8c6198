/// `GET /api2/tasks/$taskId.do`: one task, as journaled, plus live progress while it runs.
struct TaskView: Encodable, Sendable {
    var taskId: String
    var job: String
    /// `queued`, `running` or `finished`.
    var state: String
    /// The seed's state code once finished (200, 500, 504, 499, 503); 0 before.
    var lastState: Int
    var trigger: String
    var attempt: Int
    var acceptedAt: Int64
    var scheduledAt: Int64?
    var startTime: Int64?
    var endTime: Int64?
    var duration: Int64?
    var pid: Int32?
    var exitCode: Int32?
    var signal: Int32?
    var message: String
    var progress: TaskProgress.Snapshot?
    /// Cluster mode, answered from the cluster's database: the worker assigned the task.
    var worker: String?

    init(_ record: TaskRecord, live: (status: TaskStatus, progress: TaskProgress.Snapshot?)?) {
        taskId = record.id
        job = record.job
        state = (live?.status ?? record.status).rawValue
        lastState = record.result.rawValue
        trigger = record.trigger.rawValue
        attempt = record.attempt
        acceptedAt = record.acceptedAt
        scheduledAt = record.scheduledAt
        startTime = record.startTime
        endTime = record.endTime
        duration = record.duration
        pid = record.pid
        exitCode = record.exitCode
        signal = record.signal
        message = record.message
        progress = live?.progress
    }
}

/// `GET /api2/tasks/$taskId/log.do?offset=N`: one bounded chunk of a task's log.
struct TaskLogChunk: Encodable, Sendable {
    var taskId: String
    var offset: Int
    /// Where the next call should start.
    var nextOffset: Int
    /// The log file's size now.
    var size: Int
    /// True once the task has finished and everything was read.
    var complete: Bool
    /// The chunk, decoded as UTF-8 (invalid bytes become U+FFFD).
    var text: String
}
