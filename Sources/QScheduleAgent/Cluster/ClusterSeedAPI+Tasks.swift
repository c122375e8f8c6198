import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// Task info, log and kill, and `/api/check`, for the whole cluster. A task this host journaled
/// is answered here; another is looked up in the cluster's database and, once a worker claimed
/// it, the request is forwarded to that worker (marked forwarded, so it is answered there
/// from its own state). A task no worker claimed yet is answered from the database.
extension ClusterSeedAPI {
    /// A task as the cluster's database holds it.
    struct ClusterTask: Sendable {
        var record: TaskRecord
        var worker: String?
        /// A worker claimed it at some point: its journal and log are there.
        var claimed: Bool
        var status: String
        /// The app of its job (`nil` when the job left the cluster).
        var app: String?
    }

    func clusterTask(_ id: String, failure: String) async -> Result<ClusterTask?, Response.Failure> {
        await query(failure, "task lookup") { [logger] client in
            let rows = try await client.query("""
                SELECT t.job, t.param, t.status, t.worker, t.claimed_at IS NOT NULL, t.result, t.attempt, t.scheduled_at,
                    (extract(epoch FROM t.created_at) * 1000)::bigint, t.start_time, t.end_time, t.duration, t.message, j.app_name
                FROM qagent_task t LEFT JOIN qagent_job j ON j.job = t.job WHERE t.id = \(id)
                """, logger: logger)
            typealias Row = (String, String, String, String?, Bool, Int, Int, Int64?, Int64, Int64?, Int64?, Int64?, String, String?)
            for try await row in rows.decode(Row.self) {
                let (job, param, status, worker, claimed, result, attempt, scheduledAt, created, start, end, duration, message, app) = row
                var record = TaskRecord(
                    id: id, job: job, param: param, trigger: scheduledAt == nil ? .dispatch : .cron, acceptedAt: created, attempt: attempt)
                record.status = switch status {
                case "finished": .finished
                case "claimed": .running
                default: .queued
                }
                record.result = TaskResult(rawValue: result) ?? .none
                (record.scheduledAt, record.startTime, record.endTime, record.duration, record.message) = (scheduledAt, start, end, duration, message)
                return Optional(ClusterTask(record: record, worker: worker, claimed: claimed, status: status, app: app))
            }
            return nil
        }
    }

    /// The task as ``clusterTask(_:failure:)`` finds it, refused with `授权失败` + `other_app`
    /// when its job belongs to another app.
    private func visibleTask(_ id: String, failure: String) async -> Result<ClusterTask?, Response.Failure> {
        switch await clusterTask(id, failure: failure) {
        case .success(let task?) where task.app != nil && task.app != appName:
            return .failure(.init(EnvelopeResponse.failure(SeedMessage.authFailed, reason: FailureReason.otherApp)))
        case let other:
            return other
        }
    }

    /// Whether this host's journal holds the task (a read error counts as no: the cluster answers).
    private func isLocal(_ id: String) -> Bool {
        ((try? local.store.task(id)) ?? nil) != nil
    }

    /// Sends the request to `worker` as forwarded; `nil` when it did not answer.
    private func forward(_ method: String, _ path: String, body: JSONValue? = nil, to worker: String, token: String?) async -> Response? {
        guard let url = URL(string: "\(peerScheme)://\(worker)\(path)") else { return nil }
        do {
            let reply = try await transport.send(
                method, url, token: token, body: body.map { Data($0.jsonText.utf8) }, headers: [AgentHTTPResponder.forwardedHeader.rawName: "1"])
            var headers = HTTPFields()
            headers[.contentType] = reply.header("Content-Type") ?? EnvelopeResponse.contentType
            return Response(status: .init(code: reply.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: reply.body)))
        } catch {
            logger.warning("forwarding to the task's worker failed", metadata: ["worker": "\(worker)", "path": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// The worker to forward a request about `task` to, when it is a peer that claimed it.
    private func holder(of task: ClusterTask) -> String? {
        guard task.claimed, let worker = task.worker, worker != identity.address else { return nil }
        return worker
    }

    // MARK: Task info, log, kill

    /// `GET /api2/tasks/$taskId.do`, cluster-wide. From the database (with `worker`) when the
    /// worker holding it does not answer.
    func taskInfo(id: String?, token: String?) async -> Response {
        guard let id, Identifier.isTaskID(id) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        if isLocal(id) { return await local.taskInfo(id: id) }
        switch await visibleTask(id, failure: SeedMessage.queryFailed) {
        case .failure(let failure):
            return failure.response
        case .success(nil):
            return EnvelopeResponse.failure(SeedMessage.taskNotFound, reason: FailureReason.taskNotFound)
        case .success(let task?):
            if let worker = holder(of: task),
               let answer = await forward("GET", "/api2/tasks/\(SeedClient.pathSegment(id)).do", to: worker, token: token) {
                return answer
            }
            var view = TaskView(task.record, live: nil)
            view.worker = task.worker
            return EnvelopeResponse.data(view)
        }
    }

    /// `GET /api2/tasks/$taskId/log.do?offset=N`, cluster-wide: the log lives on the worker
    /// that ran the task; `查询失败` + `worker_unreachable` when it does not answer.
    func taskLog(id: String?, offset: String?, token: String?) async -> Response {
        guard let id, Identifier.isTaskID(id) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        guard let start = SeedAPI.logOffset(offset) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        if isLocal(id) { return await local.taskLog(id: id, offset: offset) }
        switch await visibleTask(id, failure: SeedMessage.queryFailed) {
        case .failure(let failure):
            return failure.response
        case .success(nil):
            return EnvelopeResponse.failure(SeedMessage.taskNotFound, reason: FailureReason.taskNotFound)
        case .success(let task?):
            guard let worker = holder(of: task) else {
                // Never ran anywhere (yet): no log; complete once it ended without running.
                return EnvelopeResponse.data(TaskLogChunk(
                    taskId: id, offset: start, nextOffset: 0, size: 0, complete: task.status == "finished", text: ""))
            }
            let path = "/api2/tasks/\(SeedClient.pathSegment(id))/log.do?offset=\(start)"
            guard let answer = await forward("GET", path, to: worker, token: token) else {
                return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.workerUnreachable)
            }
            return answer
        }
    }

    /// `POST /api2/tasks/kill.do {"taskId"}`, cluster-wide: a task no worker claimed yet ends
    /// at once (499); a claimed one is killed by its worker.
    func killTask(body: JSONValue?, token: String?) async -> Response {
        guard let id = body?.objectValue?["taskId"]?.stringValue, Identifier.isTaskID(id) else {
            return EnvelopeResponse.failure(SeedMessage.badRequest)
        }
        if await local.runner.kill(taskID: id) { return EnvelopeResponse.success(message: SeedMessage.ok) }
        // Twice at most: a task claimed between the lookup and the kill is then the worker's.
        for _ in 0..<2 {
            let found: ClusterTask
            switch await visibleTask(id, failure: SeedMessage.operationFailed) {
            case .failure(let failure): return failure.response
            case .success(nil): return await local.killTask(body: body)
            case .success(let task?): found = task
            }
            switch found.status {
            case "finished":
                return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.taskFinished)
            case "pending", "assigned":
                let ending = ClusterAdmission.Ending(result: TaskResult.killed.rawValue, message: StopReason.killed.message)
                do {
                    let ended = try await ClusterDatabase.withTimeout(Self.databaseTimeout, what: "kill") { [admission] in
                        try await admission.endUnclaimed([id], job: found.record.job, ending)
                    }
                    if !ended.isEmpty { return EnvelopeResponse.success(message: SeedMessage.ok) }
                } catch {
                    return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.clusterUnavailable)
                }
            default:
                guard let worker = holder(of: found) else { return await local.killTask(body: body) }
                guard let answer = await forward("POST", "/api2/tasks/kill.do", body: .object(["taskId": .string(id)]), to: worker, token: token) else {
                    return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.workerUnreachable)
                }
                return answer
            }
        }
        return EnvelopeResponse.failure(SeedMessage.operationFailed, reason: FailureReason.clusterUnavailable)
    }

    // MARK: Check

    /// `GET /api/check/$ip.do`, cluster-wide: for this agent's advertised IP, its own state
    /// (always, even with the database down) plus the cluster tasks assigned to it and not yet
    /// journaled here; for a member's IP, what the database shows assigned to or claimed by it
    /// (merged with this host's state when the IP is also one of its addresses); another
    /// address of this host: its own state; any other IP: `查询失败` + `unknown_host`. With
    /// the database down, only the advertised IP is answered (`cluster_unavailable` otherwise:
    /// an IP that may be a member's must never read as idle).
    func check(ip text: String?) async -> Response {
        guard let text, let ip = IPAddress(text) else { return EnvelopeResponse.failure(SeedMessage.badRequest) }
        if ip.unmapped == identity.ip.unmapped { return await localCheck(adding: [identity.address]) }
        let prefix = ListenAddress(host: ip.description, port: 0).description.dropLast(1)  // "a.b.c.d:" or "[v6]:"
        let members = await query(SeedMessage.queryFailed, "check") { [logger] client in
            let rows = try await client.query(
                "SELECT address FROM qagent_member WHERE starts_with(address, \(String(prefix)))", logger: logger)
            var found: [String] = []
            for try await address in rows.decode(String.self) { found.append(address) }
            return found
        }
        switch members {
        case .failure(let failure):
            return failure.response
        case .success(let addresses) where addresses.isEmpty:
            guard identity.isThisHost(ip) else { return EnvelopeResponse.failure(SeedMessage.queryFailed, reason: FailureReason.unknownHost) }
            return await localCheck(adding: [])
        case .success(let addresses):
            if identity.isThisHost(ip), addresses.contains(identity.address) { return await localCheck(adding: addresses) }
            switch await clusterActiveJobs(addresses: addresses) {
            case .failure(let failure): return failure.response
            case .success(let views): return EnvelopeResponse.data(views)
            }
        }
    }

    /// This host's own answer, plus the jobs the database shows active on `addresses` (when it answers).
    private func localCheck(adding addresses: [String]) async -> Response {
        var views: [JobView]
        switch await local.activeJobViews() {
        case .failure(let failure): return failure.response
        case .success(let found): views = found
        }
        // Within a second: this host's answer must not wait on a database that is down.
        if !addresses.isEmpty, case .success(let assigned) = await clusterActiveJobs(addresses: addresses, timeout: 1) {
            let known = Set(views.map(\.name))
            views += assigned.filter { !known.contains($0.name) }
        }
        return EnvelopeResponse.data(views)
    }

    /// Jobs with cluster tasks assigned to or claimed by `addresses`, as `/api/check` shows them.
    private func clusterActiveJobs(addresses: [String], timeout: Int = databaseTimeout) async -> Result<[JobView], Response.Failure> {
        await query(SeedMessage.queryFailed, "check", timeout: timeout) { [logger] client in
            let rows = try await client.query("""
                SELECT job, (extract(epoch FROM min(coalesce(claimed_at, created_at))) * 1000)::bigint FROM qagent_task
                WHERE worker = ANY(\(addresses)::text[]) AND status IN ('assigned', 'claimed') GROUP BY job ORDER BY job
                """, logger: logger)
            var since: [(String, Int64)] = []
            for try await row in rows.decode((String, Int64).self) { since.append(row) }
            guard !since.isEmpty else { return [JobView]() }
            let jobs = try await self.clusterJobs(since.map(\.0), client: client)
            let now = Date().epochMilliseconds
            return since.map { name, start in
                // A job no member serves any more still shows: its task is not finished.
                var view = jobs[name]?.view ?? JobView(config: JobConfig(name: name), settings: self.settings, enabled: true, state: JobStateRecord(name: name))
                view.markActive(since: start, now: now)
                return view
            }
        }
    }
}
