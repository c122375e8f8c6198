import Foundation
import GRDB
import Synchronization

/// The embedded SQLite store under `data_dir` (DESIGN §4): job state and the task journal.
///
/// One file, WAL mode, `synchronous=FULL`, so that a dispatch acknowledged after
/// ``insertTask(_:)`` returns survives a crash of the agent or the machine.
public final class AgentStore: Sendable {
    /// Errors the store reports in terms the agent acts on.
    public enum StoreError: Error, Equatable, CustomStringConvertible {
        /// A task with this id is already journaled.
        case duplicateTask
        /// The store was migrated by a newer qagent (`unknown` migrations); this binary knows
        /// up to `known`.
        case newerStore(unknown: [String], known: String)

        public var description: String {
            switch self {
            case .duplicateTask: return "a task with this id is already journaled"
            case .newerStore(let unknown, let known):
                return "it was written by a newer qagent (store migrations \(unknown.joined(separator: ", ")); this qagent knows up to \(known)): "
                    + "upgrade qagent, or restore the data_dir the previous version used"
            }
        }
    }

    /// The database file path.
    public let path: String
    let pool: DatabasePool
    private let journal: GroupCommitter
    /// The `address` written into reports; `nil` when no `[report] url` is configured (then
    /// finished tasks are not queued for reporting).
    let reportAddress: (@Sendable () -> String)?
    /// Whether finished tasks are queued for the cluster (`[cluster]`).
    let clusterResults: Bool
    /// Reports waiting in the outbox, kept in memory so that admission never reads SQLite.
    public let outboxDepth: OutboxDepth
    /// Told, after the commit, the jobs whose run of failures reached `alert_after_failures`.
    let alerted: (@Sendable ([String]) -> Void)?

    /// How commits reach the disk.
    public enum Durability: Sendable {
        /// Every commit is fsynced (`synchronous=FULL`): an acknowledged task survives power loss.
        case full
        /// No fsync (`synchronous=OFF`): only for benchmarks that compare against it.
        case unsafeNoSync
    }

    /// Opens (creating when needed) `qagent.sqlite` inside `dataDirectory` and migrates it.
    ///
    /// With `reportAddress`, every finished task is also queued in the report outbox, in the
    /// transaction that records it.
    /// With `clusterResults`, every finished task is also queued for the cluster's database
    /// (`cluster_outbox`), in the same transaction. `committed` is told each journal
    /// transaction's commit latency.
    public init(
        dataDirectory: String, durability: Durability = .full, reportAddress: (@Sendable () -> String)? = nil, clusterResults: Bool = false,
        committed: (@Sendable (Duration) -> Void)? = nil, alerted: (@Sendable ([String]) -> Void)? = nil
    ) throws {
        self.alerted = alerted
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        path = URL(fileURLWithPath: dataDirectory).appendingPathComponent("qagent.sqlite").path
        try Self.refuseNewerStore(at: path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets synchronous=NORMAL on the writer when it enables WAL (after any
        // prepareDatabase hook). An acknowledged dispatch must survive power loss, so the one
        // writer connection goes back to FULL: every commit is fsynced.
        let synchronous = durability == .full ? "FULL" : "OFF"
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        try Self.migrator.migrate(pool)
        journal = GroupCommitter(pool: pool, committed: committed)
        self.reportAddress = reportAddress
        self.clusterResults = clusterResults
        outboxDepth = OutboxDepth(try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 })
    }

    /// Closes the database; every later call throws. Used at shutdown and by fault tests.
    public func close() throws {
        closed.withLock { $0 = true }
        try pool.close()
    }

    /// Whether ``close()`` was called: writes can never succeed again, so retrying is pointless.
    public var isClosed: Bool { closed.withLock { $0 } }
    private let closed = Mutex(false)

    /// A store a newer qagent migrated holds tables and meanings this binary does not know:
    /// refused before anything is written to it (upgrade qagent, or restore the older data_dir).
    private static func refuseNewerStore(at path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        var readOnly = Configuration()
        readOnly.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: readOnly)
        defer { try? queue.close() }
        let migrator = Self.migrator
        let unknown = try queue.read { db in try migrator.appliedIdentifiers(db) }.subtracting(migrator.migrations)
        if !unknown.isEmpty {
            throw StoreError.newerStore(unknown: unknown.sorted(), known: migrator.migrations.last ?? "")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE job_state (
                    name TEXT PRIMARY KEY NOT NULL,
                    enabled INTEGER,
                    can_schedule INTEGER NOT NULL DEFAULT 1,
                    last_run INTEGER NOT NULL DEFAULT 0,
                    last_state INTEGER NOT NULL DEFAULT 0,
                    last_duration INTEGER NOT NULL DEFAULT 0,
                    last_update INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE task (
                    id TEXT PRIMARY KEY NOT NULL,
                    job TEXT NOT NULL,
                    param TEXT NOT NULL,
                    status TEXT NOT NULL,
                    result INTEGER NOT NULL DEFAULT 0,
                    attempt INTEGER NOT NULL DEFAULT 1,
                    trigger TEXT NOT NULL,
                    accepted_at INTEGER NOT NULL,
                    scheduled_at INTEGER,
                    start_time INTEGER,
                    end_time INTEGER,
                    duration INTEGER,
                    pid INTEGER,
                    exit_code INTEGER,
                    signal INTEGER,
                    message TEXT NOT NULL DEFAULT ''
                );
                CREATE INDEX task_unfinished ON task(status) WHERE status != 'finished';
                """)
        }
        migrator.registerMigration("v2-cron") { db in
            // The scheduled time of the last cron fire considered (fired or skipped), so a
            // start after downtime can tell which fires were missed.
            try db.execute(sql: "ALTER TABLE job_state ADD COLUMN last_fire INTEGER")
        }
        migrator.registerMigration("v3-recovery") { db in
            // Identity of a command's process (start time in clock ticks after boot, from
            // /proc/<pid>/stat) and of the agent process that ran it, so that a restart kills
            // exactly the leftovers of a previous run, never a recycled pid.
            try db.execute(sql: "ALTER TABLE task ADD COLUMN pid_start INTEGER")
            try db.execute(sql: "ALTER TABLE task ADD COLUMN instance TEXT")
        }
        migrator.registerMigration("v4-instances") { db in
            // Every agent process that used this store: a restart sweeps for the leftovers of
            // each, even for a task whose pid was not journaled before the crash.
            try db.execute(sql: "CREATE TABLE agent_instance (instance TEXT PRIMARY KEY NOT NULL, started_at INTEGER NOT NULL)")
        }
        migrator.registerMigration("v5-outbox") { db in
            // Finished tasks waiting to be reported upstream (DESIGN §7), in finishing order;
            // `payload` is the report object as sent. And small facts the agent keeps about
            // itself (`central_offline`: drain told the central scheduler this host is offline).
            try db.execute(sql: """
                CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    task_id TEXT NOT NULL,
                    enqueued_at INTEGER NOT NULL,
                    payload TEXT NOT NULL
                );
                CREATE TABLE agent_fact (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v6-cluster-outbox") { db in
            // Finished tasks whose result the cluster's database has not taken yet (DESIGN §10,
            // results: the outbox's second sink), in finishing order.
            try db.execute(sql: "CREATE TABLE cluster_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL)")
        }
        migrator.registerMigration("v7-task-listing") { db in
            // GET /api2/tasks.do: newest first, by job or not.
            try db.execute(sql: "CREATE INDEX task_accepted ON task(accepted_at)")
            try db.execute(sql: "CREATE INDEX task_job_accepted ON task(job, accepted_at)")
        }
        migrator.registerMigration("v8-alerts") { db in
            // alert_after_failures: each job's current run of failures, and alert events queued
            // in the report outbox beside the reports (`kind`), delivered as {"alerts":[...]}.
            try db.execute(sql: "ALTER TABLE job_state ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'report'")
        }
        return migrator
    }

    /// The value of a PRAGMA as text, for diagnostics and tests (`journal_mode`, `synchronous`).
    public func pragma(_ name: String) throws -> String? {
        guard name.allSatisfy({ $0.isLetter || $0 == "_" }) else { return nil }
        return try pool.write { db in try String.fetchOne(db, sql: "SELECT CAST(\(name) AS TEXT) FROM pragma_\(name)") }
    }

    /// Journal transactions committed and the writes they carried since the store opened:
    /// with concurrent writers, fewer transactions than writes (group commit).
    public var journalStatistics: (transactions: Int, writes: Int) { journal.statistics }

    // MARK: Job state

    /// Every stored job state, by name.
    public func jobStates() throws -> [String: JobStateRecord] {
        try pool.read { db in
            var states: [String: JobStateRecord] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM job_state") {
                let state = Self.jobState(row)
                states[state.name] = state
            }
            return states
        }
    }

    /// The stored state of one job, or a fresh default when it has none yet.
    public func jobState(_ name: String) throws -> JobStateRecord {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job_state WHERE name = ?", arguments: [name]).map(Self.jobState)
                ?? JobStateRecord(name: name)
        }
    }

    /// Sets `enabled` for all `names` in one transaction: all change or none.
    public func setEnabled(_ enabled: Bool, jobs names: [String]) throws {
        try pool.write { db in
            for name in names {
                try db.execute(sql: """
                    INSERT INTO job_state (name, enabled) VALUES (?, ?)
                    ON CONFLICT(name) DO UPDATE SET enabled = excluded.enabled
                    """, arguments: [name, enabled])
            }
        }
    }

    /// Sets whether this host takes work for `job`.
    public func setCanSchedule(_ canSchedule: Bool, job name: String) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO job_state (name, can_schedule) VALUES (?, ?)
                ON CONFLICT(name) DO UPDATE SET can_schedule = excluded.can_schedule
                """, arguments: [name, canSchedule])
        }
    }

    /// Records the scheduled time of the last cron fire considered for `job`.
    public func setLastFire(_ scheduledAt: Int64, job name: String) async throws {
        try await journal.write { db in
            try db.execute(sql: """
                INSERT INTO job_state (name, last_fire) VALUES (?, ?)
                ON CONFLICT(name) DO UPDATE SET last_fire = excluded.last_fire
                """, arguments: [name, scheduledAt])
        }
    }

    /// Deletes finished tasks that ended before `cutoff` (epoch ms), at most `limit` per call,
    /// and returns their ids (so their logs can be removed too).
    public func pruneFinishedTasks(endedBefore cutoff: Int64, limit: Int = 1000) async throws -> [String] {
        try await pool.write { db in
            let ids = try String.fetchAll(db, sql: """
                SELECT id FROM task WHERE status = 'finished' AND end_time < ? ORDER BY end_time LIMIT ?
                """, arguments: [cutoff, limit])
            for id in ids { try db.execute(sql: "DELETE FROM task WHERE id = ?", arguments: [id]) }
            return ids
        }
    }

    /// What `GET /api2/tasks.do` selects.
    public struct TaskQuery: Sendable, Equatable {
        public var job: String?
        public var status: TaskStatus?
        /// Accepted at or after (epoch ms).
        public var since: Int64?
        /// Accepted before (epoch ms), or the position of the previous page's last task.
        public var before: TaskCursor?
        public var limit: Int = 100

        public init(job: String? = nil, status: TaskStatus? = nil, since: Int64? = nil, before: TaskCursor? = nil, limit: Int = 100) {
            (self.job, self.status, self.since, self.before, self.limit) = (job, status, since, before, limit)
        }
    }

    /// A position in the newest-first task order: `<accepted ms>` (everything accepted before)
    /// or `<accepted ms>.<row>` (after that very task, so tasks accepted in the same
    /// millisecond are never skipped between pages).
    public struct TaskCursor: Sendable, Equatable {
        public var acceptedAt: Int64
        public var row: Int64?

        public init(acceptedAt: Int64, row: Int64? = nil) {
            (self.acceptedAt, self.row) = (acceptedAt, row)
        }

        public init?(_ text: String) {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let ms = Int64(parts[0]), ms >= 0 else { return nil }
            acceptedAt = ms
            if parts.count == 2 {
                guard let row = Int64(parts[1]), row >= 0 else { return nil }
                self.row = row
            }
        }

        public var text: String { row.map { "\(acceptedAt).\($0)" } ?? "\(acceptedAt)" }
    }

    /// Tasks matching `query`, newest first (by acceptance), at most `query.limit`, with the
    /// cursor of the next page when there may be one.
    public func listTasks(_ query: TaskQuery) throws -> (tasks: [TaskRecord], next: TaskCursor?) {
        var conditions: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if let job = query.job { conditions.append("job = ?"); arguments.append(job) }
        if let status = query.status { conditions.append("status = ?"); arguments.append(status.rawValue) }
        if let since = query.since { conditions.append("accepted_at >= ?"); arguments.append(since) }
        if let before = query.before {
            if let row = before.row {
                conditions.append("(accepted_at < ? OR (accepted_at = ? AND rowid < ?))")
                arguments += [before.acceptedAt, before.acceptedAt, row]
            } else {
                conditions.append("accepted_at < ?")
                arguments.append(before.acceptedAt)
            }
        }
        arguments.append(query.limit)
        // The SQL is assembled from fixed fragments only; every value is a bound argument.
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let rows = try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT rowid AS row_position, * FROM task \(filter) ORDER BY accepted_at DESC, rowid DESC LIMIT ?",
                arguments: StatementArguments(arguments))
        }
        let next = rows.count == query.limit ? rows.last.map { TaskCursor(acceptedAt: $0["accepted_at"], row: $0["row_position"]) } : nil
        return (rows.map(Self.task), next)
    }

    /// Every task of `job` (tests and tools), oldest first by acceptance.
    public func tasks(job name: String) throws -> [TaskRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM task WHERE job = ? ORDER BY accepted_at, rowid", arguments: [name]).map(Self.task)
        }
    }

    private static func jobState(_ row: Row) -> JobStateRecord {
        JobStateRecord(
            name: row["name"],
            enabled: row["enabled"],
            canSchedule: row["can_schedule"],
            lastRun: row["last_run"],
            lastState: row["last_state"],
            lastDuration: row["last_duration"],
            lastUpdate: row["last_update"],
            lastFire: row["last_fire"]
        )
    }

    // MARK: Tasks

    /// Journals a new task durably (group commit). Throws ``StoreError/duplicateTask`` when
    /// the id exists.
    public func insertTask(_ task: TaskRecord) async throws {
        do {
            try await journal.write { db in
                try db.cachedStatement(sql: """
                    INSERT INTO task (id, job, param, status, result, attempt, trigger, accepted_at, scheduled_at, message)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [
                        task.id, task.job, task.param, task.status.rawValue, task.result.rawValue, task.attempt,
                        task.trigger.rawValue, task.acceptedAt, task.scheduledAt, task.message,
                    ])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw StoreError.duplicateTask
        }
    }

    /// Queues a finished task again as `attempt` (a later attempt its admitting authority, the
    /// cluster, gave it after this host ended an earlier one); `false` when it is not finished
    /// with an earlier attempt. Its journal row is reset to `queued`; its log goes on.
    public func reopenTask(_ id: String, attempt: Int) async throws -> Bool {
        let changed = Mutex(false)
        try await journal.write { db in
            try db.cachedStatement(sql: """
                UPDATE task SET status = 'queued', result = 0, attempt = ?, accepted_at = ?, start_time = NULL, end_time = NULL,
                    duration = NULL, pid = NULL, pid_start = NULL, exit_code = NULL, signal = NULL, message = ''
                WHERE id = ? AND status = 'finished' AND attempt < ?
                """).execute(arguments: [attempt, Date().epochMilliseconds, id, attempt])
            let count = db.changesCount
            changed.withLock { $0 = count > 0 }
        }
        return changed.withLock { $0 }
    }

    /// A running task that failed goes back to `queued` as `attempt` (the job's `retries`),
    /// keeping `message` (why it is retried) for task info; the task stays unfinished, so a
    /// crash during the backoff settles it like any queued leftover. `submit` form: queued
    /// now, in the same actor turn as the runner's bookkeeping.
    func submitRequeueForRetry(_ id: String, attempt: Int, message: String) -> CommitTicket {
        journal.submit { db in
            try db.cachedStatement(sql: """
                UPDATE task SET status = 'queued', result = 0, attempt = ?, start_time = NULL, end_time = NULL,
                    duration = NULL, pid = NULL, pid_start = NULL, exit_code = NULL, signal = NULL, message = ?
                WHERE id = ? AND status = 'running'
                """).execute(arguments: [attempt, message, id])
        }
    }

    /// One task by id, or `nil`.
    public func task(_ id: String) throws -> TaskRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM task WHERE id = ?", arguments: [id]).map(Self.task)
        }
    }

    /// Records durably that `attempt` of a task starts now. Called before anything of the
    /// task runs, so a crash from then on settles the task as started (rerun as attempt + 1,
    /// or 503), never as one that may run again under the same attempt number.
    public func markRunning(_ id: String, attempt: Int, startTime: Int64) async throws {
        try await submitMarkRunning(id, attempt: attempt, startTime: startTime).wait()
    }

    /// ``markRunning(_:attempt:startTime:)`` queued now and awaited later, so that it can share
    /// a transaction with writes submitted in the same turn (the completion of the task whose
    /// slot it takes).
    func submitMarkRunning(_ id: String, attempt: Int, startTime: Int64) -> CommitTicket {
        journal.submit { db in
            try db.cachedStatement(sql: """
                UPDATE task SET status = 'running', attempt = ?, start_time = ?, pid = NULL, pid_start = NULL, instance = NULL
                WHERE id = ?
                """).execute(arguments: [attempt, startTime, id])
        }
    }

    /// Queues the process identity of a started command without waiting for its commit: it
    /// commits before (or with) anything journaled for the task afterwards, such as its
    /// completion. Only the restart's leftover sweep reads it.
    public func recordProcessSoon(_ id: String, process: ProcessIdentity) {
        journal.enqueue { db in
            try db.cachedStatement(sql: "UPDATE task SET pid = ?, pid_start = ?, instance = ? WHERE id = ?")
                .execute(arguments: [process.pid, process.startTicks, process.instance, id])
        }
    }

    // MARK: Recovery

    /// Instance ids of the agent processes that used this store before (newest first, at
    /// most 20).
    public func earlierInstances() throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT instance FROM agent_instance ORDER BY started_at DESC, rowid DESC")
        }
    }

    /// Records this agent process's instance id; keeps the last 20.
    public func registerInstance(_ instance: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO agent_instance (instance, started_at) VALUES (?, ?)", arguments: [instance, Date().epochMilliseconds])
            try db.execute(sql: """
                DELETE FROM agent_instance WHERE instance NOT IN
                    (SELECT instance FROM agent_instance ORDER BY started_at DESC, rowid DESC LIMIT 20)
                """)
        }
    }

    /// Tasks a previous agent process left queued or running, oldest first.
    public func unfinishedTasks() throws -> [TaskRecord] {
        try leftoverTasks().map(\.record)
    }

    /// Tasks a previous agent process left queued or running, oldest first, each with the
    /// process identity recorded for its command (if any): one read for all of them.
    public func leftoverTasks() throws -> [LeftoverTask] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM task WHERE status != 'finished' ORDER BY accepted_at, rowid").map { row in
                let pid: Int32? = row["pid"]
                return LeftoverTask(
                    record: Self.task(row),
                    process: pid.map { ProcessIdentity(pid: $0, startTicks: row["pid_start"], instance: row["instance"]) })
            }
        }
    }

    /// Records a finished task and the job's `last*` fields in one transaction.
    public func finishTask(_ completion: TaskCompletion) async throws {
        try await finishTasks([completion])
    }

    /// Records finished tasks (and their jobs' `last*` fields) in one transaction: all or none.
    public func finishTasks(_ completions: [TaskCompletion]) async throws {
        guard !completions.isEmpty else { return }
        try await submitFinish(completions).wait()
    }

    /// ``finishTasks(_:)`` queued now and awaited later (see ``submitMarkRunning(_:attempt:startTime:)``).
    func submitFinish(_ completions: [TaskCompletion]) -> CommitTicket {
        let address = reportAddress?()
        let depth = outboxDepth
        let count = completions.count
        var committed: (@Sendable () -> Void)?
        if address != nil { committed = { @Sendable in depth.add(count) } }
        let cluster = clusterResults
        let raised = Mutex<[String]>([])
        let alerted = self.alerted
        if address != nil || alerted != nil {
            let counted = committed
            committed = { @Sendable in
                counted?()
                let jobs = raised.withLock { $0 }
                if !jobs.isEmpty {
                    if address != nil { depth.add(jobs.count) }
                    alerted?(jobs)
                }
            }
        }
        let write: GroupCommitter.Write = { db in
            raised.withLock { $0 = [] }  // a retried transaction starts over
            for completion in completions {
                try Self.recordFinished(completion, reportAddress: address, in: db)
                if try Self.countFailure(completion, reportAddress: address, in: db) { raised.withLock { $0.append(completion.job) } }
                if cluster {
                    try db.cachedStatement(sql: "INSERT INTO cluster_outbox (task_id) VALUES (?)").execute(arguments: [completion.taskID])
                }
            }
        }
        return journal.submit(write, committed: committed)
    }

    private static func recordFinished(_ completion: TaskCompletion, reportAddress address: String?, in db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE task SET status = 'finished', result = ?, start_time = ?, end_time = ?, duration = ?,
                exit_code = ?, signal = ?, message = ? WHERE id = ?
            """).execute(arguments: [
                completion.result.rawValue, completion.startTime, completion.endTime, completion.duration,
                completion.exitCode, completion.signal, completion.message, completion.taskID,
            ])
        try db.cachedStatement(sql: """
            INSERT INTO job_state (name, last_run, last_state, last_duration, last_update) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET last_run = excluded.last_run, last_state = excluded.last_state,
                last_duration = excluded.last_duration, last_update = excluded.last_update
            """).execute(arguments: [
                completion.job, completion.startTime, completion.result.rawValue, completion.duration, completion.endTime,
            ])
        if let address {
            // The report is built from the row just written, so it says exactly what the journal says.
            try db.cachedStatement(sql: """
                INSERT INTO outbox (task_id, enqueued_at, payload)
                SELECT id, ?, json_object('taskId', id, 'job', job, 'address', ?, 'state', result,
                    'startTime', start_time, 'endTime', end_time, 'duration', duration, 'message', message, 'attempt', attempt)
                FROM task WHERE id = ?
                """).execute(arguments: [completion.endTime, address, completion.taskID])
        }
    }

    /// Keeps the job's run of consecutive failures (500, 504, 503; a success resets it, a kill
    /// leaves it) and, when the run reaches the job's `alert_after_failures`, queues one alert
    /// event in the outbox (when reports go upstream). Returns whether an alert was raised:
    /// once per run of failures, when it reaches the threshold.
    private static func countFailure(_ completion: TaskCompletion, reportAddress address: String?, in db: Database) throws -> Bool {
        switch completion.result {
        case .succeeded:
            try db.cachedStatement(sql: "UPDATE job_state SET consecutive_failures = 0 WHERE name = ?").execute(arguments: [completion.job])
            return false
        case .failed, .timedOut, .lost:
            try db.cachedStatement(sql: "UPDATE job_state SET consecutive_failures = consecutive_failures + 1 WHERE name = ?")
                .execute(arguments: [completion.job])
        case .killed, .none:
            return false
        }
        let threshold = completion.alertAfterFailures
        guard threshold > 0,
              let count = try Int.fetchOne(db, sql: "SELECT consecutive_failures FROM job_state WHERE name = ?", arguments: [completion.job]),
              count == threshold else { return false }
        if let address {
            try db.cachedStatement(sql: """
                INSERT INTO outbox (task_id, enqueued_at, payload, kind)
                SELECT id, ?, json_object('job', job, 'address', ?, 'consecutiveFailures', ?, 'threshold', ?, 'taskId', id,
                    'state', result, 'message', message, 'time', end_time), 'alert'
                FROM task WHERE id = ?
                """).execute(arguments: [completion.endTime, address, count, threshold, completion.taskID])
        }
        return true
    }

    private static func task(_ row: Row) -> TaskRecord {
        var task = TaskRecord(
            id: row["id"], job: row["job"], param: row["param"],
            trigger: TaskTrigger(rawValue: row["trigger"]) ?? .dispatch,
            acceptedAt: row["accepted_at"], attempt: row["attempt"])
        task.status = TaskStatus(rawValue: row["status"]) ?? .finished
        task.result = TaskResult(rawValue: row["result"]) ?? .none
        task.scheduledAt = row["scheduled_at"]
        task.startTime = row["start_time"]
        task.endTime = row["end_time"]
        task.duration = row["duration"]
        task.pid = row["pid"]
        task.exitCode = row["exit_code"]
        task.signal = row["signal"]
        task.message = row["message"]
        return task
    }
}
