import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The seed interface answered for the whole cluster from any agent (DESIGN §10): jobs on/off,
/// job info, workers, dispatch, task info/log/kill (forwarded to the worker holding the task),
/// `/api/check` for any member's IP, status and drain. Same envelopes and messages as
/// standalone; a database that does not answer within 5 s gives the endpoint's failure message
/// with reason `cluster_unavailable`.
///
/// Apps: a token is its application's — the app of the agent that accepted it — so a request
/// acts only on jobs whose cluster app (`app_name` of the agents serving them) is this agent's;
/// another app's job answers `授权失败` and nothing changes.
final class ClusterSeedAPI: Sendable {
    /// This host's answers: its own state, and what a forwarded request gets.
    let local: SeedAPI
    let database: ClusterDatabase
    let admission: ClusterAdmission
    let dispatcher: ClusterDispatcher
    let membership: ClusterMembership
    let identity: AgentIdentity
    let logger: Logger
    /// For requests forwarded to the worker holding a task.
    let transport: HTTPTransport
    /// `https` when the agents listen with TLS (a cluster's agents are configured alike).
    let peerScheme: String

    /// `peerTLS`: how peers are asked when they listen with TLS; `nil` = plain HTTP.
    init(
        local: SeedAPI, admission: ClusterAdmission, membership: ClusterMembership, identity: AgentIdentity, peerTLS: ClientTLSSettings?,
        logger: Logger
    ) {
        transport = HTTPTransport(timeout: 5, tls: peerTLS ?? ClientTLSSettings())
        peerScheme = peerTLS == nil ? "http" : "https"
        self.local = local
        self.database = admission.database
        self.admission = admission
        self.dispatcher = ClusterDispatcher(admission: admission, runner: local.runner, logger: logger)
        self.membership = membership
        self.identity = identity
        self.logger = logger
    }

    var settings: AgentSettings { local.settings }
    var appName: String { settings.appName }

    /// How long a cluster-wide answer may wait for the database.
    static let databaseTimeout = 5

    /// Runs `body` against the database within ``databaseTimeout``; a failure is logged and
    /// answered `message` + `cluster_unavailable`.
    func query<T: Sendable>(
        _ message: String, _ what: String, timeout: Int = databaseTimeout, _ body: @escaping @Sendable (PostgresClient) async throws -> T
    ) async -> Result<T, Response.Failure> {
        do {
            let value = try await ClusterDatabase.withTimeout(timeout, what: what) { [client = database.client] in
                try await body(client)
            }
            return .success(value)
        } catch {
            logger.error("cluster query failed", metadata: ["error": "\(ClusterError.describing(error, what, settings: database.settings))"])
            return .failure(.init(EnvelopeResponse.failure(message, reason: FailureReason.clusterUnavailable)))
        }
    }

    // MARK: Jobs

    /// `POST /api2/jobs/on.do` and `off.do`, cluster-wide: every named job must be served by a
    /// member (else `启用失败`/`停止失败`, nothing changes) and be of this agent's app (else `授权失败`).
    func setJobs(enabled: Bool, body: JSONValue?) async -> Response {
        let failure = enabled ? SeedMessage.enableFailed : SeedMessage.disableFailed
        guard let list = body?.objectValue?["jobs"]?.arrayValue, !list.isEmpty,
              list.allSatisfy({ Identifier.isJobName($0.stringValue) }) else {
            return EnvelopeResponse.failure(SeedMessage.badRequest)
        }
        let names = Array(Set(list.compactMap(\.stringValue))).sorted()
        let app = appName
        let answer = await query(failure, "jobs on/off") { [logger] client in
            let rows = try await client.query("""
                WITH known AS (
                    SELECT job, app_name FROM qagent_job j
                    WHERE job = ANY(\(names)::text[]) AND EXISTS (SELECT 1 FROM qagent_member_job m WHERE m.job = j.job)
                ), verdict AS (
                    SELECT count(*) = \(names.count) AS complete, coalesce(bool_and(app_name = \(app)), true) AS ours FROM known
                ), changed AS (
                    UPDATE qagent_job SET enabled = \(enabled)
                    WHERE job = ANY(\(names)::text[]) AND (SELECT complete AND ours FROM verdict)
                )
                SELECT complete, ours FROM verdict
                """, logger: logger)
            for try await (complete, ours) in rows.decode((Bool, Bool).self) { return (complete, ours) }
            return (false, true)
        }
        switch answer {
        case .failure(let failure): return failure.response
        case .success(let (complete, ours)):
            guard complete else { return EnvelopeResponse.failure(failure, reason: FailureReason.jobNotFound) }
            guard ours else { return EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp) }
            logger.notice("cluster jobs switched", metadata: ["jobs": "\(names.joined(separator: ","))", "enabled": "\(enabled)"])
            return EnvelopeResponse.success(message: SeedMessage.ok)
        }
    }

    /// A cluster job as job info shows it.
    struct ClusterJob: Sendable {
        var view: JobView
        var app: String
    }

    /// The cluster's view of `names` (served by some member): enabled, `last*` and the
    /// definition of the most recently started agent, hosts whose definition differs.
    func clusterJobs(_ names: [String], client: PostgresClient) async throws -> [String: ClusterJob] {
        let rows = try await client.query("""
            SELECT j.job, j.enabled, j.definition::text, j.app_name, j.app_id, j.last_run, j.last_state, j.last_duration, j.last_update,
                coalesce((SELECT array_agg(m.address ORDER BY m.address) FROM qagent_member_job m
                          WHERE m.job = j.job AND m.definition <> j.definition), '{}')
            FROM qagent_job j
            WHERE j.job = ANY(\(names)::text[]) AND EXISTS (SELECT 1 FROM qagent_member_job m WHERE m.job = j.job)
            """, logger: logger)
        var jobs: [String: ClusterJob] = [:]
        let now = Date()
        for try await row in rows.decode((String, Bool, String, String, Int, Int64, Int, Int64, Int64, [String]).self) {
            let (name, enabled, definitionText, app, appID, lastRun, lastState, lastDuration, lastUpdate, differing) = row
            let config = Self.jobConfig(name: name, definition: JSONValue(parsing: definitionText) ?? .object([:]))
            var state = JobStateRecord(name: name)
            (state.lastRun, state.lastState, state.lastDuration, state.lastUpdate) = (lastRun, lastState, lastDuration, lastUpdate)
            var view = JobView(
                config: config, settings: settings, enabled: enabled, state: state,
                nextRun: config.cron?.next(after: now, in: settings.timeZone)?.epochMilliseconds ?? 0)
            (view.appName, view.appId) = (app, appID)
            view.differingWorkers = differing.isEmpty ? nil : differing
            jobs[name] = ClusterJob(view: view, app: app)
        }
        return jobs
    }

    /// The job a cluster definition describes (what job info shows of it).
    static func jobConfig(name: String, definition: JSONValue) -> JobConfig {
        var config = JobConfig(name: name)
        config.desc = definition["desc"]?.stringValue ?? ""
        config.cron = definition["cron"]?.stringValue.flatMap { try? CronExpression($0) }
        config.recover = definition["recover"]?.stringValue.flatMap(RecoverPolicy.init(rawValue:)) ?? .retry
        config.timeout = definition["timeout"]?.intValue.map(Int.init) ?? 0
        config.loadBalance = definition["loadBalance"]?.stringValue ?? "random"
        config.consecutiveFailTimesAlertThreshold = definition["consecutiveFailTimesAlertThreshold"]?.intValue.map(Int.init) ?? 1
        return config
    }

    /// `GET /api2/jobs.do`, cluster-wide: every job of this agent's app that a member serves.
    func jobs() async -> Response {
        let app = appName
        let answer = await query(SeedMessage.queryFailed, "jobs") { [logger] client in
            let rows = try await client.query("""
                SELECT job FROM qagent_job j WHERE app_name = \(app) AND EXISTS (SELECT 1 FROM qagent_member_job m WHERE m.job = j.job)
                ORDER BY job
                """, logger: logger)
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            let jobs = try await self.clusterJobs(names, client: client)
            return names.compactMap { jobs[$0]?.view }
        }
        switch answer {
        case .failure(let failure): return failure.response
        case .success(let views): return EnvelopeResponse.data(views)
        }
    }

    /// `GET /api2/jobs/$job_name.do`, cluster-wide (`differingWorkers` lists members whose
    /// definition of the job differs from the cluster's).
    func jobInfo(name: String?) async -> Response {
        guard let name, Identifier.isJobName(name) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        switch await query(SeedMessage.queryFailed, "job info", { client in try await self.clusterJobs([name], client: client) }) {
        case .failure(let failure):
            return failure.response
        case .success(let jobs):
            guard let job = jobs[name] else { return EnvelopeResponse.failure(SeedMessage.jobNotFound) }
            guard job.app == appName else { return EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp) }
            return EnvelopeResponse.data(job.view)
        }
    }

    // MARK: Dispatch

    /// `POST /api2/tasks.do`, cluster-wide (see ``ClusterDispatcher``); another app's job is `授权失败`.
    func dispatch(body: JSONValue?) async -> Response {
        let request: SeedAPI.DispatchRequest
        switch SeedAPI.DispatchRequest.parse(body, allowsWorker: true) {
        case .failure(let answer): return answer.response
        case .success(let parsed): request = parsed
        }
        if let refusal = await appRefusal(job: request.job, failure: SeedMessage.internalError) { return refusal }
        return SeedAPI.answer(await dispatcher.dispatch(job: request.job, param: request.param, taskID: request.taskID, worker: request.worker))
    }

    /// `授权失败` when `job` belongs to another app; `nil` when it is this app's or unknown
    /// (unknown jobs get the endpoint's own answer).
    func appRefusal(job: String, failure: String) async -> Response? {
        let answer = await query(failure, "job app") { [logger] client in
            let rows = try await client.query("SELECT app_name FROM qagent_job WHERE job = \(job)", logger: logger)
            for try await app in rows.decode(String.self) { return Optional(app) }
            return nil
        }
        switch answer {
        case .failure(let failure): return failure.response
        case .success(let app):
            guard let app, app != appName else { return nil }
            return EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp)
        }
    }

    // MARK: Workers

    /// `GET /api2/workers/$job_name.do`: every member serving the job, with its switch, whether
    /// it is online (heartbeat younger than `dead_after`) and draining.
    func workers(job name: String?) async -> Response {
        guard let name, Identifier.isJobName(name) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        let deadAfter = database.settings.deadAfter
        let answer = await query(SeedMessage.queryFailed, "workers") { [logger] client in
            let rows = try await client.query("""
                SELECT mj.address, coalesce(s.can_schedule, true), m.heartbeat_at > now() - make_interval(secs => \(deadAfter)), m.draining, j.app_name
                FROM qagent_member_job mj JOIN qagent_member m ON m.address = mj.address JOIN qagent_job j ON j.job = mj.job
                LEFT JOIN qagent_worker_switch s ON s.job = mj.job AND s.address = mj.address
                WHERE mj.job = \(name) ORDER BY mj.address
                """, logger: logger)
            var found: [(view: WorkerView, app: String)] = []
            for try await (address, canSchedule, online, draining, app) in rows.decode((String, Bool, Bool, Bool, String).self) {
                var view = WorkerView(address: address, canSchedule: canSchedule, hostname: address, jobName: name)
                (view.online, view.draining) = (online, draining)
                found.append((view, app))
            }
            return found
        }
        switch answer {
        case .failure(let failure): return failure.response
        case .success(let found):
            guard let first = found.first else { return EnvelopeResponse.failure(SeedMessage.jobNotFound) }
            guard first.app == appName else { return EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp) }
            return EnvelopeResponse.data(found.map(\.view))
        }
    }

    /// `POST /api2/workers/state.do`, cluster-wide: the known members of the job are switched
    /// (kept across their restarts); taking offline the last online worker that can schedule
    /// the job is `所有机器不能全部下线` and changes nothing; addresses that serve no such job
    /// give `可能存在未操作成功的机器,请调用查看接口验证` with the known ones applied.
    func setWorkers(body: JSONValue?) async -> Response {
        let request: SeedAPI.WorkersRequest
        switch SeedAPI.WorkersRequest.parse(body) {
        case .failure(let answer): return answer.response
        case .success(let parsed): request = parsed
        }
        let job = request.job
        var switches: [String: Bool] = [:]
        for item in request.wanted { switches[item.address.description] = item.online }
        let wanted = switches
        let (addresses, values) = (Array(wanted.keys), wanted.keys.map { wanted[$0]! })
        let (deadAfter, app) = (database.settings.deadAfter, appName)
        enum Verdict: Sendable { case unknownJob, otherApp, lastWorker, applied(unknown: Int) }
        let answer = await query(SeedMessage.operationFailed, "workers state") { [logger] client in
            try await client.withTransaction(logger: logger) { connection -> Verdict in
                var jobApp: String?
                for try await found in try await connection.query(
                    "SELECT app_name FROM qagent_job WHERE job = \(job) FOR UPDATE", logger: logger).decode(String.self) { jobApp = found }
                let rows = try await connection.query("""
                    SELECT mj.address, coalesce(s.can_schedule, true), m.heartbeat_at > now() - make_interval(secs => \(deadAfter))
                    FROM qagent_member_job mj JOIN qagent_member m ON m.address = mj.address
                    LEFT JOIN qagent_worker_switch s ON s.job = mj.job AND s.address = mj.address
                    WHERE mj.job = \(job)
                    """, logger: logger)
                var serving: [String: (canSchedule: Bool, online: Bool)] = [:]
                for try await (address, canSchedule, online) in rows.decode((String, Bool, Bool).self) { serving[address] = (canSchedule, online) }
                guard let jobApp, !serving.isEmpty else { return .unknownJob }
                guard jobApp == app else { return .otherApp }
                let known = addresses.indices.filter { serving[addresses[$0]] != nil }
                // After the change, would any online worker still schedule the job?
                let remaining = serving.filter { address, worker in worker.online && (wanted[address] ?? worker.canSchedule) }
                if wanted.values.contains(false), remaining.isEmpty { return .lastWorker }
                let knownAddresses = known.map { addresses[$0] }
                let knownValues = known.map { values[$0] }
                try await connection.query("""
                    INSERT INTO qagent_worker_switch (job, address, can_schedule)
                    SELECT \(job), address, can_schedule FROM unnest(\(knownAddresses)::text[], \(knownValues)::boolean[]) AS t(address, can_schedule)
                    ON CONFLICT (job, address) DO UPDATE SET can_schedule = excluded.can_schedule
                    """, logger: logger)
                return .applied(unknown: addresses.count - known.count)
            }
        }
        switch answer {
        case .failure(let failure): return failure.response
        case .success(.unknownJob): return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.jobNotFound)
        case .success(.otherApp): return EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp)
        case .success(.lastWorker): return EnvelopeResponse.failure(SeedMessage.allWorkersOffline, reason: FailureReason.lastWorker)
        case .success(.applied(let unknown)):
            // A worker switched back on may take the job's waiting tasks.
            try? await admission.admit(job: job)
            if unknown > 0 { return EnvelopeResponse.failure(SeedMessage.someWorkersNotApplied, reason: FailureReason.unknownWorker) }
            return EnvelopeResponse.success(message: SeedMessage.ok)
        }
    }

    // MARK: Agent

    /// `GET /api2/agent/status.do`: this agent's status with the cluster's membership counts.
    func status() async -> Response {
        let deadAfter = database.settings.deadAfter
        let answer = await query(SeedMessage.queryFailed, "status") { [logger] client in
            let rows = try await client.query("""
                SELECT count(*), count(*) FILTER (WHERE heartbeat_at > now() - make_interval(secs => \(deadAfter))),
                    count(*) FILTER (WHERE draining),
                    (SELECT count(*) FROM qagent_task WHERE status = 'pending'), (SELECT count(*) FROM qagent_task WHERE status IN ('assigned', 'claimed'))
                FROM qagent_member
                """, logger: logger)
            for try await (members, online, draining, pending, active) in rows.decode((Int, Int, Int, Int, Int).self) {
                return StatusView.Cluster(reachable: true, members: members, online: online, draining: draining, pendingTasks: pending, activeTasks: active)
            }
            return StatusView.Cluster(reachable: true)
        }
        var view = await local.statusView()
        switch answer {
        case .success(let cluster): view.cluster = cluster
        case .failure: view.cluster = StatusView.Cluster(reachable: false)
        }
        return EnvelopeResponse.data(view)
    }

    /// `POST /api2/agent/drain.do`: this agent drains (its assigned tasks go to peers, what it
    /// runs finishes); the cluster learns it at once.
    func drain(body: JSONValue?) async -> Response {
        let response = await local.drain(body: body)
        await publishDraining()
        return response
    }

    /// `POST /api2/agent/resume.do`.
    func resume() async -> Response {
        let response = await local.resume()
        await publishDraining()
        return response
    }

    private func publishDraining() async {
        do {
            try await ClusterDatabase.withTimeout(Self.databaseTimeout, what: "publishing drain") { [membership] in
                try await membership.publishDraining()
            }
        } catch {
            logger.warning("drain state not published; the next heartbeat carries it", metadata: [
                "error": "\(ClusterError.describing(error, "publishing drain", settings: database.settings))",
            ])
        }
    }
}
