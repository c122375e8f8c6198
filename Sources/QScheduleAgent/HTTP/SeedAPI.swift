import Foundation
import Hummingbird

/// The endpoint logic of the seed interface for this host (DESIGN §2), independent of routing.
struct SeedAPI: Sendable {
    let runner: TaskRunner
    let scheduler: CronScheduler?
    let reporter: Reporter?
    let central: CentralWorkers?
    let store: AgentStore
    let identity: AgentIdentity
    let settings: AgentSettings
    /// The registry `GET /metrics` renders.
    let metrics: AgentMetrics
    /// Where refused tokens are logged (rate-limited).
    let refusedTokens: RefusedTokenLog
    /// Applies a re-read `agent.conf` (it refuses when the agent has no config file).
    let reloader: ConfigReloader
    /// Who fires cron jobs: `local` (this agent), `central` (`[scheduler] url`), `cluster`.
    var cronMode: String = "local"
    /// Cluster mode: the endpoints answered for the whole cluster (DESIGN §10).
    var cluster: ClusterSeedAPI?

    /// `POST /api2/agent/reload.do`: re-reads `agent.conf`. `操作成功` with what changed
    /// (jobs added, changed, removed; keys kept until a restart); `操作失败` with the reason
    /// `config_invalid` (and the loader's error: nothing changed) or `no_config_file`.
    func reload() async -> Response {
        switch await reloader.reload(trigger: "POST /api2/agent/reload.do") {
        case .success(let outcome):
            return EnvelopeResponse.make(Envelope(ret: true, message: SeedMessage.ok, data: ReloadView(outcome)))
        case .failure(let failure):
            return EnvelopeResponse.make(Envelope(ret: false, message: SeedMessage.operationFailed, reason: failure.reason, data: ["error": failure.description]))
        }
    }

    /// The cluster-wide endpoints for `call`, unless this agent runs standalone or the call
    /// was forwarded by a peer (then this host answers from its own state).
    func clusterWide(_ call: AgentHTTPResponder.Call) -> ClusterSeedAPI? {
        call.forwarded ? nil : cluster
    }

    // MARK: Health

    func health() -> Response {
        EnvelopeResponse.success(message: "ok")
    }

    /// `GET /metrics`: the Prometheus text exposition (format 0.0.4), with the gauges read now.
    func metricsText() async -> Response {
        let snapshot = AgentMetrics.Snapshot(
            active: await runner.activeJobs(), outboxDepth: store.outboxDepth.value, outboxOldest: try? store.oldestOutboxEntry(),
            clusterOutboxDepth: cluster == nil ? nil : try? store.clusterOutboxDepth(), draining: await runner.isDraining)
        let text = metrics.render(snapshot)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func ready() async -> Response {
        if await runner.isDraining {
            return EnvelopeResponse.failure("draining", reason: "draining", status: .serviceUnavailable)
        }
        return EnvelopeResponse.success(message: "ready")
    }

    /// When the job next fires: the local scheduler's plan, or (driven centrally) the next
    /// match of its cron from now; 0 when it has no cron or never fires again.
    private func nextRun(_ config: JobConfig) async -> Int64 {
        if let scheduler { return await scheduler.nextRun(config.name) ?? 0 }
        return config.cron?.next(after: Date(), in: settings.timeZone)?.epochMilliseconds ?? 0
    }

    // MARK: Agent

    /// `GET /api2/agent/status.do`.
    func status() async -> Response {
        EnvelopeResponse.data(await statusView())
    }

    /// What `status.do` shows of this agent.
    func statusView() async -> StatusView {
        let counts = await runner.counts
        let cronCounts = await scheduler?.counts ?? CronScheduler.Counters()
        let cronJobs = await runner.jobConfigs.filter { $0.cron != nil }.count
        return StatusView(
            address: identity.address, version: AgentVersion.current, draining: await runner.isDraining,
            drainingSince: await runner.drainingSince, shuttingDown: await runner.shuttingDown,
            running: counts.running, queued: counts.waiting, runningTasks: await runner.runningTaskIDs,
            cron: .init(mode: cronMode, jobs: cronJobs, fires: cronCounts.fires, skips: cronCounts.skips),
            report: await reporter?.snapshot(), central: await central?.snapshot())
    }

    /// `POST /api2/agent/drain.do` (`{"forceLocal":true}` optional): stop intake; running and
    /// queued tasks go on. Idempotent. With `[scheduler] url`, the central server is first told
    /// this host is offline for each of its jobs; when it answers `所有机器不能全部下线` for any,
    /// that is undone there and the drain refused (`last_worker`), unless `forceLocal`.
    func drain(body: JSONValue?) async -> Response {
        if let body, body.objectValue == nil { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        let forceValue = body?["forceLocal"]
        guard forceValue == nil || forceValue?.boolValue != nil else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        var outcomes: [CentralWorkers.Outcome]?
        if let central {
            let force = forceValue?.boolValue ?? false
            let found = await central.takeOffline(jobs: await runner.schedulableJobs, undoOnLastWorker: !force)
            if !force, found.contains(where: { $0.outcome == .lastWorker }) {
                return EnvelopeResponse.make(Envelope(ret: false, message: SeedMessage.allWorkersOffline, reason: FailureReason.lastWorker,
                                                      data: CentralAnswer(central: found)))
            }
            outcomes = found
        }
        await runner.setDraining(true)
        return centralAnswer(outcomes)
    }

    /// `POST /api2/agent/resume.do`: take work again; refused while the agent is stopping.
    /// With `[scheduler] url`, the central server is told this host is back for its jobs.
    func resume() async -> Response {
        guard await runner.setDraining(false) else {
            return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.shuttingDown)
        }
        var outcomes: [CentralWorkers.Outcome]?
        if let central { outcomes = await central.bringOnline(jobs: await runner.schedulableJobs) }
        return centralAnswer(outcomes)
    }

    /// `data.central`: what the central scheduler answered for each job, when there is one.
    private struct CentralAnswer: Encodable {
        var central: [CentralWorkers.Outcome]
    }

    private func centralAnswer(_ outcomes: [CentralWorkers.Outcome]?) -> Response {
        guard let outcomes else { return EnvelopeResponse.success(message: SeedMessage.ok) }
        return EnvelopeResponse.make(Envelope(ret: true, message: SeedMessage.ok, reason: nil, data: CentralAnswer(central: outcomes)))
    }

    // MARK: Jobs

    /// `POST /api2/jobs/on.do` and `off.do`: all named jobs change, or none.
    func setJobs(enabled: Bool, body: JSONValue?) async -> Response {
        let failure = enabled ? SeedMessage.enableFailed : SeedMessage.disableFailed
        guard let list = body?.objectValue?["jobs"]?.arrayValue, !list.isEmpty,
              list.allSatisfy({ Identifier.isJobName($0.stringValue) }) else {
            return EnvelopeResponse.failure(SeedMessage.badRequest)
        }
        let names = list.compactMap(\.stringValue)
        do {
            guard try await runner.setEnabled(enabled, jobs: names) else {
                return EnvelopeResponse.failure(failure, reason: FailureReason.jobNotFound)
            }
        } catch {
            return EnvelopeResponse.failure(failure, reason: FailureReason.storeUnavailable)
        }
        return EnvelopeResponse.success(message: SeedMessage.ok)
    }

    /// `GET /api2/jobs/$job_name.do`.
    func jobInfo(name: String?) async -> Response {
        guard let name, Identifier.isJobName(name) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        guard let config = await runner.jobConfig(name), let enabled = await runner.isEnabled(name) else {
            return EnvelopeResponse.failure(SeedMessage.jobNotFound)
        }
        let state: JobStateRecord
        do {
            state = try store.jobState(name)
        } catch {
            return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)
        }
        return EnvelopeResponse.data(JobView(config: config, settings: settings, enabled: enabled, state: state, nextRun: await nextRun(config)))
    }

    // MARK: Listing

    /// `GET /api2/jobs.do`: every job registered here, by name.
    func jobs() async -> Response {
        let states: [String: JobStateRecord]
        do {
            states = try store.jobStates()
        } catch {
            return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)
        }
        var views: [JobView] = []
        for config in await runner.jobConfigs.sorted(by: { $0.name < $1.name }) {
            guard let enabled = await runner.isEnabled(config.name) else { continue }
            views.append(JobView(
                config: config, settings: settings, enabled: enabled, state: states[config.name] ?? JobStateRecord(name: config.name),
                nextRun: await nextRun(config)))
        }
        return EnvelopeResponse.data(views)
    }

    /// Largest page of `GET /api2/tasks.do`.
    static let maxTaskPage = 1_000

    /// `参数错误`, for the parsers that return a `Result`; built when returned (encoding it up
    /// front for every dispatch showed in the dispatch profile).
    static var badRequest: Response.Failure { Response.Failure(EnvelopeResponse.failure(SeedMessage.badRequest)) }

    /// The query of `GET /api2/tasks.do?job=&state=&since=&before=&limit=`, or `参数错误`.
    static func taskQuery(_ parameters: [String: String]) -> Result<AgentStore.TaskQuery, Response.Failure> {
        var query = AgentStore.TaskQuery()
        if let job = parameters["job"] {
            guard Identifier.isJobName(job) else { return .failure(badRequest) }
            query.job = job
        }
        if let state = parameters["state"] {
            guard let status = TaskStatus(rawValue: state) else { return .failure(badRequest) }
            query.status = status
        }
        if let text = parameters["since"] {
            guard let value = Int64(text), value >= 0 else { return .failure(badRequest) }
            query.since = value
        }
        if let text = parameters["before"] {
            guard let cursor = AgentStore.TaskCursor(text) else { return .failure(badRequest) }
            query.before = cursor
        }
        if let text = parameters["limit"] {
            guard let limit = Int(text), (1...maxTaskPage).contains(limit) else { return .failure(badRequest) }
            query.limit = limit
        }
        return .success(query)
    }

    /// One page of `GET /api2/tasks.do`: the tasks, and the `before` of the next page (absent on the last).
    struct TaskPage: Encodable, Sendable {
        var tasks: [TaskView]
        var next: String?
    }

    /// `GET /api2/tasks.do`: this host's journaled tasks, newest first, paged.
    func listTasks(_ parameters: [String: String]) async -> Response {
        let query: AgentStore.TaskQuery
        switch Self.taskQuery(parameters) {
        case .failure(let answer): return answer.response
        case .success(let parsed): query = parsed
        }
        let page: (tasks: [TaskRecord], next: AgentStore.TaskCursor?)
        do {
            page = try store.listTasks(query)
        } catch {
            return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)
        }
        var views: [TaskView] = []
        for record in page.tasks { views.append(TaskView(record, live: await runner.activeTask(record.id))) }
        return EnvelopeResponse.data(TaskPage(tasks: views, next: page.next?.text))
    }

    // MARK: Tasks

    /// A valid `POST /api2/tasks.do` body.
    struct DispatchRequest: Sendable {
        var job: String
        var param: JSONValue
        var taskID: String?
        /// Cluster mode: `"worker":"ip:port"` pins the task to one member.
        var worker: String?

        /// Parses `body`, or answers `参数错误`; `worker` is read only when `allowsWorker`.
        static func parse(_ body: JSONValue?, allowsWorker: Bool) -> Result<DispatchRequest, Response.Failure> {
            guard let object = body?.objectValue, let job = object["job"]?.stringValue, Identifier.isJobName(job) else {
                return .failure(SeedAPI.badRequest)
            }
            var request = DispatchRequest(job: job, param: .object([:]))
            switch object["param"] {
            case nil, .null?: break
            case .object?: request.param = object["param"]!
            default: return .failure(SeedAPI.badRequest)
            }
            if let given = object["taskId"] {
                guard let text = given.stringValue, Identifier.isTaskID(text) else { return .failure(SeedAPI.badRequest) }
                request.taskID = text
            }
            if let pinned = object["worker"], allowsWorker {
                guard let text = pinned.stringValue, let address = ListenAddress(parsing: text) else { return .failure(SeedAPI.badRequest) }
                request.worker = address.description
            }
            return .success(request)
        }
    }

    /// `POST /api2/tasks.do`: run the job on this host now. `ret:true` means journaled.
    func dispatch(body: JSONValue?) async -> Response {
        switch DispatchRequest.parse(body, allowsWorker: false) {
        case .failure(let answer):
            return answer.response
        case .success(let request):
            return Self.answer(await runner.dispatch(job: request.job, param: request.param, taskID: request.taskID))
        }
    }

    /// The envelope for a dispatch's result.
    static func answer(_ result: DispatchResult) -> Response {
        switch result {
        case .accepted(let id):
            return EnvelopeResponse.success(message: id)
        case .refused(let reason):
            return EnvelopeResponse.failure(SeedMessage.retryFailed, reason: reason.rawValue)
        case .journalFailed:
            return EnvelopeResponse.failure(SeedMessage.internalError, reason: FailureReason.journalFailed)
        case .clusterUnavailable:
            return EnvelopeResponse.failure(SeedMessage.internalError, reason: FailureReason.clusterUnavailable)
        }
    }

    // MARK: Task extensions

    /// Largest log chunk one `log.do` call returns.
    static let logChunkBytes = 64 * 1024

    /// The journaled task `id`, or the answer for a bad id (`参数错误`), an unknown one
    /// (`task不存在`) or an unreadable store (`查询失败`).
    private func journaledTask(_ id: String?) -> Result<TaskRecord, Response.Failure> {
        guard let id, Identifier.isTaskID(id) else { return .failure(Self.badRequest) }
        do {
            guard let record = try store.task(id) else {
                return .failure(.init(EnvelopeResponse.failure(SeedMessage.taskNotFound, reason: FailureReason.taskNotFound)))
            }
            return .success(record)
        } catch {
            return .failure(.init(EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)))
        }
    }

    /// `GET /api2/tasks/$taskId.do`.
    func taskInfo(id: String?) async -> Response {
        switch journaledTask(id) {
        case .failure(let answer): return answer.response
        case .success(let record): return EnvelopeResponse.data(TaskView(record, live: await runner.activeTask(record.id)))
        }
    }

    /// `POST /api2/tasks/kill.do {"taskId"}`: stop a running task (499) or drop a queued one.
    func killTask(body: JSONValue?) async -> Response {
        guard let id = body?.objectValue?["taskId"]?.stringValue, Identifier.isTaskID(id) else {
            return EnvelopeResponse.failure(SeedMessage.badRequest)
        }
        if await runner.kill(taskID: id) { return EnvelopeResponse.success(message: SeedMessage.ok) }
        do {
            guard try store.task(id) != nil else {
                return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.taskNotFound)
            }
        } catch {
            return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.storeUnavailable)
        }
        return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.taskFinished)
    }

    /// The `offset` of `log.do`: 0 when absent, `nil` when not a non-negative integer.
    static func logOffset(_ text: String?) -> Int? {
        guard let text else { return 0 }
        guard let value = Int(text), value >= 0 else { return nil }
        return value
    }

    /// `GET /api2/tasks/$taskId/log.do?offset=N`: up to 64 KiB of the log from byte `N`.
    func taskLog(id: String?, offset offsetText: String?) async -> Response {
        guard let offset = Self.logOffset(offsetText) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        let record: TaskRecord
        switch journaledTask(id) {
        case .failure(let answer): return answer.response
        case .success(let found): record = found
        }
        let id = record.id
        // The log is closed before the completion is journaled: finished means nothing more comes.
        let finished = record.status == .finished
        let path = URL(fileURLWithPath: settings.dataDir).appendingPathComponent("logs/\(id).log").path
        var chunk = Data()
        var size = 0
        if let handle = FileHandle(forReadingAtPath: path) {
            defer { try? handle.close() }
            size = Int((try? handle.seekToEnd()) ?? 0)
            if offset < size {
                try? handle.seek(toOffset: UInt64(offset))
                chunk = (try? handle.read(upToCount: Self.logChunkBytes)) ?? Data()
            }
        } else if finished, record.result == .succeeded, let duration = record.duration {
            // It succeeded without writing anything: no file; its log is the closing line.
            let text = Data((TaskRunner.closingLine(result: record.result, message: record.message, durationMs: duration) + "\n").utf8)
            size = text.count
            if offset < size { chunk = text.suffix(from: offset) }
        }
        let next = min(max(offset, 0), size) + chunk.count
        return EnvelopeResponse.data(TaskLogChunk(
            taskId: id, offset: offset, nextOffset: next, size: size, complete: finished && next >= size,
            text: String(decoding: chunk, as: UTF8.self)))
    }

    // MARK: Workers

    /// `GET /api2/workers/$job_name.do`: the workers of the job this agent vouches for (itself).
    func workers(job name: String?) async -> Response {
        guard let name, Identifier.isJobName(name) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        guard await runner.jobConfig(name) != nil else { return EnvelopeResponse.failure(SeedMessage.jobNotFound) }
        let state: JobStateRecord
        do {
            state = try store.jobState(name)
        } catch {
            return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)
        }
        let address = identity.address
        return EnvelopeResponse.data([WorkerView(address: address, canSchedule: state.canSchedule, hostname: address, jobName: name)])
    }

    /// `POST /api2/workers/state.do`: take known workers on or offline. This agent knows
    /// itself only, so taking it offline leaves the job no worker and is refused.
    func setWorkers(body: JSONValue?) async -> Response {
        let job: String
        let wanted: [(address: ListenAddress, online: Bool)]
        switch WorkersRequest.parse(body) {
        case .failure(let answer): return answer.response
        case .success(let request): (job, wanted) = (request.job, request.wanted)
        }
        guard await runner.jobConfig(job) != nil else {
            return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.jobNotFound)
        }
        let mine = wanted.filter { IPAddress($0.address.host)?.unmapped == identity.ip.unmapped && $0.address.port == identity.port }
        let unknownCount = wanted.count - mine.count
        if !mine.isEmpty {
            guard mine.allSatisfy(\.online) else { return EnvelopeResponse.failure(SeedMessage.allWorkersOffline) }
            do {
                try await runner.setCanSchedule(true, job: job)
            } catch {
                return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.storeUnavailable)
            }
        }
        if unknownCount > 0 {
            return EnvelopeResponse.failure(SeedMessage.someWorkersNotApplied, reason: FailureReason.unknownWorker)
        }
        return EnvelopeResponse.success(message: SeedMessage.ok)
    }

    /// A valid `POST /api2/workers/state.do` body.
    struct WorkersRequest: Sendable {
        var job: String
        var wanted: [(address: ListenAddress, online: Bool)]

        /// Parses `body` (workers as a string holding JSON, or an object), or answers
        /// `参数错误` / `workers json 格式非法`.
        static func parse(_ body: JSONValue?) -> Result<WorkersRequest, Response.Failure> {
            guard let object = body?.objectValue, let job = object["jobName"]?.stringValue, Identifier.isJobName(job) else {
                return .failure(SeedAPI.badRequest)
            }
            func invalidJSON() -> Response.Failure { Response.Failure(EnvelopeResponse.failure(SeedMessage.workersJSONInvalid)) }
            let workers: [String: JSONValue]
            switch object["workers"] {
            case .string(let text)?:
                guard let parsed = JSONValue(parsing: text)?.objectValue else { return .failure(invalidJSON()) }
                workers = parsed
            case .object(let parsed)?:
                workers = parsed
            default:
                return .failure(SeedAPI.badRequest)
            }
            var wanted: [(address: ListenAddress, online: Bool)] = []
            for (key, value) in workers {
                guard let address = ListenAddress(parsing: key), IPAddress(address.host) != nil, let online = value.boolValue else {
                    return .failure(invalidJSON())
                }
                wanted.append((address, online))
            }
            guard !wanted.isEmpty else { return .failure(invalidJSON()) }
            return .success(WorkersRequest(job: job, wanted: wanted))
        }
    }

    // MARK: Check

    /// `GET /api/check/$ip.do`: every job with a running or queued task on this host.
    func check(ip text: String?) async -> Response {
        guard let text, let ip = IPAddress(text) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        guard identity.isThisHost(ip) else {
            return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.notThisHost)
        }
        switch await activeJobViews() {
        case .failure(let failure): return failure.response
        case .success(let views): return views.isEmpty ? EnvelopeResponse.emptyList() : EnvelopeResponse.data(views)
        }
    }

    /// Every job with a running or queued task on this host, as `/api/check` shows it:
    /// `lastRun` = its oldest start (or acceptance), `lastDuration` = now − that, `lastUpdate` = now.
    func activeJobViews() async -> Result<[JobView], Response.Failure> {
        let active = await runner.activeJobs()
        guard !active.isEmpty else { return .success([]) }
        let states: [String: JobStateRecord]
        do {
            states = try store.jobStates()
        } catch {
            return .failure(.init(EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.storeUnavailable)))
        }
        let now = Date().epochMilliseconds
        var views: [JobView] = []
        for job in active {
            guard let config = await runner.jobConfig(job.name), let enabled = await runner.isEnabled(job.name) else { continue }
            var view = JobView(
                config: config, settings: settings, enabled: enabled,
                state: states[job.name] ?? JobStateRecord(name: job.name), nextRun: await nextRun(config))
            view.markActive(since: job.oldestStart ?? job.oldestQueued ?? now, now: now)
            views.append(view)
        }
        return .success(views)
    }
}
