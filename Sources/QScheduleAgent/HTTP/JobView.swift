/// The seed's `{job}` object (DESIGN §2). Times are epoch ms, durations ms.
struct JobView: Encodable, Sendable {
    var appId: Int
    var appName: String
    var name: String
    var desc: String
    var cron: String
    var state: Bool
    var type = "remote"
    var recover: String
    var timeout: Int
    var loadBalance: String
    var consecutiveFailTimesAlertThreshold: Int
    var lastRun: Int64
    var lastState: Int
    var lastDuration: Int64
    var lastUpdate: Int64
    /// 0 while the job has no next fire on this agent.
    var nextRun: Int64
    /// Cluster mode: members whose definition of the job differs from the cluster's (the
    /// most recently started agent's); absent when all agree.
    var differingWorkers: [String]?

    init(config: JobConfig, settings: AgentSettings, enabled: Bool, state: JobStateRecord, nextRun: Int64 = 0) {
        appId = settings.appID
        appName = settings.appName
        name = config.name
        desc = config.desc
        cron = config.cron?.description ?? ""
        self.state = enabled
        recover = config.recover.rawValue
        timeout = config.timeout
        loadBalance = config.loadBalance
        consecutiveFailTimesAlertThreshold = config.consecutiveFailTimesAlertThreshold
        lastRun = state.lastRun
        lastState = state.lastState
        lastDuration = state.lastDuration
        lastUpdate = state.lastUpdate
        self.nextRun = nextRun
    }

    /// `/api/check`'s reading: active since `since` (its oldest running or queued task).
    mutating func markActive(since: Int64, now: Int64) {
        lastRun = since
        lastDuration = max(0, now - since)
        lastUpdate = now
    }
}

/// One entry of `GET /api2/workers/$job_name.do`.
struct WorkerView: Encodable, Sendable {
    var address: String
    var canSchedule: Bool
    /// The seed writes the worker address here too.
    var hostname: String
    var jobName: String
    /// Cluster mode: the heartbeat is younger than `dead_after`.
    var online: Bool?
    /// Cluster mode: the member is draining (gets no new tasks).
    var draining: Bool?
}
