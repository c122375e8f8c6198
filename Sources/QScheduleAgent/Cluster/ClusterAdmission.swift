import Foundation
import Logging
import PostgresNIO

/// Creates cluster tasks and admits them to workers (DESIGN §10: exactly-once fires, worker
/// choice, single instance). Every change to a job's open tasks happens in a transaction that
/// first locks the job's `qagent_job` row, so the job's overlap policy and `max_concurrency`
/// hold for the whole cluster however many agents create, finish or hand back its tasks at
/// once. A task waits `pending` until admitted: a free slot of the job (1 for `serial`,
/// `discard`, `cover`; `max_concurrency` for `concurrent`) and an online, non-draining worker
/// serving the job with `canSchedule` (chosen at random or round-robin, per `loadBalance`);
/// then it is `assigned` to that worker, which is notified.
///
/// The work per task is a fixed handful of statements, whatever the number of agents.
struct ClusterAdmission: Sendable {
    let database: ClusterDatabase
    let logger: Logger

    /// A task to create: a dispatch (`scheduledAt == nil`) or a cron fire.
    struct NewTask: Sendable {
        var id: String
        var job: String
        var param: String = "{}"
        var scheduledAt: Int64?
        /// Dispatch only: the one worker that may run it.
        var pinned: String?
    }

    enum Outcome: Sendable, Equatable {
        /// Committed: the task exists now (assigned, or pending until a slot and a worker are free).
        case created
        /// A task with this id already exists (with this job and param, or not).
        case exists(job: String, param: String)
        case refused(RefusalReason)
    }

    /// The state code and message of a task that ends in the database without running.
    struct Ending: Sendable {
        var result: Int
        var message: String
    }

    /// How many times a task may be handed back before it ends as 503.
    static let maxHandbacks = 3

    // MARK: Entry points

    /// Creates `task` unless its id exists, then admits what the job's slots allow.
    func create(_ task: NewTask) async throws -> Outcome {
        try await database.client.withTransaction(logger: logger) { connection in
            // Lock the job's row, and see whether the id exists (a race on it is caught by the insert).
            var locked = false
            let lockRows = try await connection.query("""
                SELECT (SELECT job FROM qagent_task WHERE id = \(task.id)), (SELECT param FROM qagent_task WHERE id = \(task.id))
                FROM qagent_job WHERE job = \(task.job) FOR UPDATE
                """, logger: logger)
            for try await (existingJob, existingParam) in lockRows.decode((String?, String?).self) {
                if let existingJob, let existingParam { return .exists(job: existingJob, param: existingParam) }
                locked = true
            }
            guard locked, var state = try await openState(job: task.job, connection) else {
                return try await existingTask(task.id, connection) ?? .refused(.jobNotFound)
            }
            if let refusal = refusal(for: task, in: state) { return .refused(refusal) }
            if state.policy.overlap == .cover { try await cover(&state, by: task.id, connection) }
            let inserted = try await connection.query("""
                INSERT INTO qagent_task (id, job, scheduled_at, param, status, pinned)
                VALUES (\(task.id), \(task.job), \(task.scheduledAt), \(task.param), 'pending', \(task.pinned))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: logger)
            var created = false
            for try await _ in inserted { created = true }
            guard created else {
                // Another transaction took this id (for another job, which did not hold this lock).
                return try await existingTask(task.id, connection) ?? .refused(.taskIDConflict)
            }
            state.pending.append(.init(id: task.id, pinned: task.pinned, refusedBy: nil))
            try await assign(state, connection)
            return .created
        }
    }

    /// Whether a task with this id exists: one statement outside any transaction, so that a
    /// fire's backup finds the owner's row cheaply.
    func exists(_ id: String) async throws -> Bool {
        let rows = try await database.client.query("SELECT 1 FROM qagent_task WHERE id = \(id)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Admits the pending tasks of `job` that its free slots and workers allow (after a result
    /// freed a slot, or a worker came online).
    func admit(job: String) async throws {
        try await database.client.withTransaction(logger: logger) { connection in
            guard let state = try await lockedState(job: job, connection) else { return }
            try await assign(state, connection)
        }
    }

    /// A worker refused the task it claimed (busy, overloaded, draining): it waits again for
    /// another worker (not `worker`, while there is another), at most ``maxHandbacks`` times;
    /// then it ends as 503.
    func handBack(taskID: String, job: String, by worker: String, reason: String) async throws {
        let limit = Self.maxHandbacks
        let message = "refused by \(limit + 1) workers, last \(worker): \(reason)"
        let now = Date().epochMilliseconds
        try await database.client.withTransaction(logger: logger) { connection in
            guard try await lockJob(job, connection) else { return }
            try await connection.query("""
                UPDATE qagent_task SET handbacks = handbacks + 1, worker = NULL, claimed_at = NULL, assigned_at = NULL, refused_by = \(worker),
                    status = CASE WHEN handbacks < \(limit) THEN 'pending' ELSE 'finished' END,
                    result = CASE WHEN handbacks < \(limit) THEN result ELSE 503 END,
                    end_time = CASE WHEN handbacks < \(limit) THEN end_time ELSE \(now) END,
                    message = CASE WHEN handbacks < \(limit) THEN message ELSE \(message) END
                WHERE id = \(taskID) AND worker = \(worker) AND status = 'claimed'
                """, logger: logger)
            guard let state = try await openState(job: job, connection) else { return }
            try await assign(state, connection)
        }
    }

    /// Settles the open tasks of `job` held by workers that stopped answering (DESIGN §10,
    /// failures), exactly once whichever agents try: a task assigned but not claimed within
    /// `dead_after` waits for another worker; a claimed task whose worker's heartbeat is older
    /// than `dead_after` (or whose worker left the cluster) is retried per the job's
    /// `recover` — `retry`: attempt + 1 on another worker, up to `max_attempts`; else it ends
    /// 503. A pinned task loses its pin (its worker is gone). The member rows are locked
    /// first, so a heartbeat cannot slip in between the check and the change. Returns the ids
    /// settled.
    func settleDead(job: String) async throws -> [String] {
        let deadAfter = database.settings.deadAfter
        let now = Date().epochMilliseconds
        return try await database.client.withTransaction(logger: logger) { connection in
            guard try await lockJob(job, connection) else { return [] }
            try await connection.query("""
                SELECT 1 FROM qagent_member WHERE address IN (
                    SELECT worker FROM qagent_task WHERE job = \(job) AND status IN ('assigned', 'claimed'))
                ORDER BY address FOR UPDATE
                """, logger: logger)
            let rows = try await connection.query("""
                UPDATE qagent_task t SET
                    status = CASE WHEN t.status = 'assigned' OR (p.retry AND t.attempt < p.max_attempts) THEN 'pending' ELSE 'finished' END,
                    attempt = CASE WHEN t.status = 'claimed' AND p.retry AND t.attempt < p.max_attempts THEN t.attempt + 1 ELSE t.attempt END,
                    result = CASE WHEN t.status = 'claimed' AND NOT (p.retry AND t.attempt < p.max_attempts) THEN 503 ELSE t.result END,
                    message = CASE WHEN t.status = 'claimed' AND NOT (p.retry AND t.attempt < p.max_attempts)
                        THEN 'lost: worker ' || t.worker || ' stopped answering (no heartbeat for dead_after)' ELSE t.message END,
                    end_time = CASE WHEN t.status = 'claimed' AND NOT (p.retry AND t.attempt < p.max_attempts) THEN \(now) ELSE t.end_time END,
                    worker = CASE WHEN t.status = 'claimed' AND NOT (p.retry AND t.attempt < p.max_attempts) THEN t.worker END,
                    refused_by = t.worker, claimed_at = NULL, assigned_at = NULL, pinned = NULL
                FROM (SELECT coalesce(definition->>'recover', 'retry') = 'retry' AS retry,
                             coalesce((definition->>'maxAttempts')::int, 3) AS max_attempts
                      FROM qagent_job WHERE job = \(job)) AS p
                WHERE t.job = \(job) AND (
                    (t.status = 'assigned' AND t.assigned_at < now() - make_interval(secs => \(deadAfter)))
                    OR (t.status = 'claimed' AND t.claimed_at < now() - make_interval(secs => \(deadAfter))
                        AND NOT EXISTS (SELECT 1 FROM qagent_member m WHERE m.address = t.worker
                                        AND m.heartbeat_at >= now() - make_interval(secs => \(deadAfter)))))
                RETURNING t.id
                """, logger: logger)
            var settled: [String] = []
            for try await id in rows.decode(String.self) { settled.append(id) }
            if !settled.isEmpty, let state = try await openState(job: job, connection) { try await assign(state, connection) }
            return settled
        }
    }

    /// Jobs with open tasks that ``settleDead(job:)`` would change (a cheap look, no locks).
    func jobsWithDeadTasks() async throws -> [String] {
        let deadAfter = database.settings.deadAfter
        let rows = try await database.client.query("""
            SELECT DISTINCT t.job FROM qagent_task t
            WHERE (t.status = 'assigned' AND t.assigned_at < now() - make_interval(secs => \(deadAfter)))
               OR (t.status = 'claimed' AND t.claimed_at < now() - make_interval(secs => \(deadAfter))
                   AND NOT EXISTS (SELECT 1 FROM qagent_member m WHERE m.address = t.worker
                                   AND m.heartbeat_at >= now() - make_interval(secs => \(deadAfter))))
            """, logger: logger)
        var jobs: [String] = []
        for try await job in rows.decode(String.self) { jobs.append(job) }
        return jobs
    }

    /// Ends tasks of `job` that no worker holds yet (`pending` or `assigned`, not `claimed`)
    /// with `ending`; returns the ids ended. A claimed task is left to its worker.
    func endUnclaimed(_ ids: [String], job: String, _ ending: Ending) async throws -> [String] {
        try await database.client.withTransaction(logger: logger) { connection in
            guard try await lockJob(job, connection) else { return [] }
            let ended = try await endUnclaimed(ids, ending, connection)
            if let state = try await openState(job: job, connection) { try await assign(state, connection) }
            return ended
        }
    }

    // MARK: The job's state

    /// One open task of the job, as admission sees it.
    struct OpenTask: Sendable {
        var id: String
        var worker: String?
        var claimed: Bool
    }

    /// A pending task, oldest first.
    struct PendingTask: Sendable {
        var id: String
        var pinned: String? = nil
        var refusedBy: String? = nil
        /// False while a retry's backoff (`not_before`) lasts: it holds its place (it counts
        /// for `discard`, `max_queued`) but is not assigned yet.
        var ready = true
    }

    /// The job as one admission sees it, under the lock of its row.
    struct JobState: Sendable {
        var job: String
        var enabled: Bool
        var policy: ClusterJobPolicy
        var assignments: Int64
        /// Every member serving the job.
        var serving: Set<String>
        /// Online, not draining, `canSchedule`: sorted, for round-robin.
        var eligible: [String]
        /// `assigned` or `claimed`.
        var active: [OpenTask]
        var pending: [PendingTask]
    }

    private func existingTask(_ id: String, _ connection: PostgresConnection) async throws -> Outcome? {
        let rows = try await connection.query("SELECT job, param FROM qagent_task WHERE id = \(id)", logger: logger)
        for try await (job, param) in rows.decode((String, String).self) { return .exists(job: job, param: param) }
        return nil
    }

    /// Locks the job's row; `false` when the cluster has no such job.
    private func lockJob(_ job: String, _ connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query("SELECT 1 FROM qagent_job WHERE job = \(job) FOR UPDATE", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    private func lockedState(job: String, _ connection: PostgresConnection) async throws -> JobState? {
        guard try await lockJob(job, connection) else { return nil }
        return try await openState(job: job, connection)
    }

    /// Reads the job (its row already locked by this transaction) in one statement: policy,
    /// workers, open tasks (oldest first).
    private func openState(job: String, _ connection: PostgresConnection) async throws -> JobState? {
        let deadAfter = database.settings.deadAfter
        let rows = try await connection.query("""
            WITH w AS (
                SELECT m.address, m.heartbeat_at > now() - make_interval(secs => \(deadAfter)) AND NOT m.draining
                    AND coalesce(s.can_schedule, true) AS eligible
                FROM qagent_member_job j JOIN qagent_member m ON m.address = j.address
                LEFT JOIN qagent_worker_switch s ON s.job = j.job AND s.address = j.address
                WHERE j.job = \(job)
            ), t AS (
                SELECT id, status, coalesce(worker, '') AS worker, coalesce(pinned, '') AS pinned, coalesce(refused_by, '') AS refused_by, created_at,
                    coalesce(not_before <= now(), true) AS ready
                FROM qagent_task WHERE job = \(job) AND status <> 'finished'
            )
            SELECT enabled, definition::text, assignments,
                ARRAY(SELECT address FROM w ORDER BY address), ARRAY(SELECT eligible FROM w ORDER BY address),
                ARRAY(SELECT id FROM t ORDER BY created_at, id), ARRAY(SELECT status FROM t ORDER BY created_at, id),
                ARRAY(SELECT worker FROM t ORDER BY created_at, id), ARRAY(SELECT pinned FROM t ORDER BY created_at, id),
                ARRAY(SELECT refused_by FROM t ORDER BY created_at, id), ARRAY(SELECT ready FROM t ORDER BY created_at, id)
            FROM qagent_job WHERE job = \(job)
            """, logger: logger)
        typealias Row = (Bool, String, Int64, [String], [Bool], [String], [String], [String], [String], [String], [Bool])
        for try await row in rows.decode(Row.self) {
            let (enabled, definition, assignments, addresses, eligible, ids, statuses, workers, pinned, refusedBy, ready) = row
            var state = JobState(
                job: job, enabled: enabled, policy: ClusterJobPolicy(definition: JSONValue(parsing: definition) ?? .object([:])),
                assignments: assignments, serving: Set(addresses), eligible: zip(addresses, eligible).filter(\.1).map(\.0),
                active: [], pending: [])
            func text(_ value: String) -> String? { value.isEmpty ? nil : value }
            for index in ids.indices {
                if statuses[index] == "pending" {
                    state.pending.append(.init(id: ids[index], pinned: text(pinned[index]), refusedBy: text(refusedBy[index]), ready: ready[index]))
                } else {
                    state.active.append(.init(id: ids[index], worker: text(workers[index]), claimed: statuses[index] == "claimed"))
                }
            }
            return state
        }
        return nil
    }

    // MARK: Decisions

    /// Why `task` cannot be created now, if it cannot.
    func refusal(for task: NewTask, in state: JobState) -> RefusalReason? {
        guard !state.serving.isEmpty else { return .jobNotFound }
        guard state.enabled else { return .jobDisabled }
        if let pinned = task.pinned {
            guard state.serving.contains(pinned) else { return .unknownWorker }
            guard state.eligible.contains(pinned) else { return .workerOffline }
        } else if task.scheduledAt == nil, state.eligible.isEmpty {
            // A dispatch is refused at once; a fire waits pending for a worker.
            return .workerOffline
        }
        let open = state.active.count + state.pending.count
        switch state.policy.overlap {
        case .discard:
            if open > 0 { return .jobBusy }
        case .concurrent, .serial:
            if open >= state.policy.slots + state.policy.maxQueued { return .overloaded }
        case .cover:
            break  // the new task supersedes the others
        }
        return nil
    }

    /// `overlap = "cover"`: the waiting and not yet claimed tasks end as killed (499, covered);
    /// the workers running claimed ones are told to stop them. Their slots free once their
    /// results arrive, so two tasks of the job never run at once.
    private func cover(_ state: inout JobState, by newID: String, _ connection: PostgresConnection) async throws {
        let unclaimed = state.pending.map(\.id) + state.active.filter { !$0.claimed }.map(\.id)
        let ending = Ending(result: 499, message: StopReason.covered(by: newID).message)
        _ = try await endUnclaimed(unclaimed, ending, connection)
        state.pending = []
        state.active.removeAll { !$0.claimed }
        let notices = state.active.compactMap { task in task.worker.map { ClusterNotice.cover(worker: $0, taskID: task.id, by: newID) } }
        if !notices.isEmpty {
            let (channels, payloads) = (notices.map { ClusterNotice.channel(for: $0.worker) }, notices.map(\.payload))
            try await connection.query(
                "SELECT pg_notify(c, p) FROM unnest(\(channels)::text[], \(payloads)::text[]) AS n(c, p)", logger: logger)
        }
    }

    private func endUnclaimed(_ ids: [String], _ ending: Ending, _ connection: PostgresConnection) async throws -> [String] {
        guard !ids.isEmpty else { return [] }
        let now = Date().epochMilliseconds
        let rows = try await connection.query("""
            UPDATE qagent_task SET status = 'finished', result = \(ending.result), message = \(ending.message),
                start_time = coalesce(start_time, \(now)), end_time = \(now), duration = 0, worker = coalesce(worker, pinned)
            WHERE id = ANY(\(ids)::text[]) AND status IN ('pending', 'assigned') RETURNING id
            """, logger: logger)
        var ended: [String] = []
        for try await id in rows.decode(String.self) { ended.append(id) }
        return ended
    }

    /// Assigns pending tasks, oldest first, while the job has free slots and a worker for them.
    private func assign(_ state: JobState, _ connection: PostgresConnection) async throws {
        let picks = Self.picks(for: state)
        guard !picks.isEmpty else { return }
        let ids = picks.map(\.id)
        let workers = picks.map(\.worker)
        let advanced = state.policy.loadBalance == "round_robin" ? Int64(picks.count) : 0
        try await connection.query("""
            WITH assigned AS (
                UPDATE qagent_task t SET status = 'assigned', worker = a.worker, assigned_at = now()
                FROM unnest(\(ids)::text[], \(workers)::text[]) AS a(id, worker)
                WHERE t.id = a.id AND t.status = 'pending'
                RETURNING t.worker
            ), counted AS (
                UPDATE qagent_job SET assignments = assignments + \(advanced) WHERE job = \(state.job) AND \(advanced) > 0
            )
            SELECT pg_notify('qagent_' || translate(w, '.:[]', '____'), w) FROM (SELECT DISTINCT worker AS w FROM assigned) AS notified
            """, logger: logger)
    }

    /// Which pending task goes to which worker: pure, so the policy is tested without a database.
    static func picks(for state: JobState, random: (Int) -> Int = { Int.random(in: 0..<$0) }) -> [(id: String, worker: String)] {
        var free = state.policy.slots - state.active.count
        var picks: [(id: String, worker: String)] = []
        var turn = state.assignments
        for task in state.pending where free > 0 && task.ready {
            var candidates = state.eligible
            if let pinned = task.pinned {
                candidates = candidates.contains(pinned) ? [pinned] : []
            } else if let refusedBy = task.refusedBy, candidates.count > 1 {
                candidates.removeAll { $0 == refusedBy }
            }
            guard !candidates.isEmpty else { continue }
            let worker: String
            if state.policy.loadBalance == "round_robin" {
                worker = candidates[Int(turn % Int64(candidates.count))]
                turn += 1
            } else {
                worker = candidates[random(candidates.count)]
            }
            picks.append((task.id, worker))
            free -= 1
        }
        return picks
    }
}

/// A job's admission policy as the cluster holds it (the definition of the most recently
/// started agent serving it).
struct ClusterJobPolicy: Sendable, Equatable {
    var overlap: OverlapPolicy
    var maxConcurrency: Int
    var maxQueued: Int
    var loadBalance: String

    /// How many of the job's tasks may run at once in the cluster.
    var slots: Int { overlap == .concurrent ? max(1, maxConcurrency) : 1 }

    init(overlap: OverlapPolicy = .serial, maxConcurrency: Int = 1, maxQueued: Int = 100, loadBalance: String = "random") {
        self.overlap = overlap
        self.maxConcurrency = maxConcurrency
        self.maxQueued = maxQueued
        self.loadBalance = loadBalance
    }

    init(definition: JSONValue) {
        self.init(
            overlap: definition["overlap"]?.stringValue.flatMap(OverlapPolicy.init(rawValue:)) ?? .serial,
            maxConcurrency: definition["maxConcurrency"]?.intValue.map(Int.init) ?? 1,
            maxQueued: definition["maxQueued"]?.intValue.map(Int.init) ?? 100,
            loadBalance: definition["loadBalance"]?.stringValue ?? "random")
    }
}

/// What travels on a worker's channel: its address (new work for it), or an order to stop a
/// task it runs because a newer task of a `cover` job superseded it.
enum ClusterNotice: Equatable, Sendable {
    /// The worker's own channel: a notification reaches only the worker it is for (one shared
    /// channel would deliver every notification to every agent of the fleet). The same
    /// mapping is written in SQL where assignments notify: `'qagent_' || translate(w, '.:[]', '____')`.
    static func channel(for worker: String) -> String {
        "qagent_" + String(worker.map { ".:[]".contains($0) ? "_" : $0 })
    }

    case work(worker: String)
    case cover(worker: String, taskID: String, by: String)

    var payload: String {
        switch self {
        case .work(let worker): return worker
        case .cover(let worker, let taskID, let by): return "cover \(worker) \(taskID) \(by)"
        }
    }

    init?(payload: String) {
        let parts = payload.split(separator: " ").map(String.init)
        switch parts.count {
        case 1: self = .work(worker: parts[0])
        case 4 where parts[0] == "cover": self = .cover(worker: parts[1], taskID: parts[2], by: parts[3])
        default: return nil
        }
    }

    var worker: String {
        switch self {
        case .work(let worker), .cover(let worker, _, _): return worker
        }
    }
}
