import Foundation
import Logging
import ServiceLifecycle

/// Admits, queues, starts and finishes tasks on this host (DESIGN §3).
///
/// Every task, whether dispatched over HTTP or fired locally, enters through
/// ``dispatch(job:param:taskID:trigger:scheduledAt:)``: the answer `accepted` is given only
/// after the task is committed to the journal. Queues are bounded per job
/// (`max_queued`) and per host (`max_running` + `max_queued`); nothing waits without bound.
///
/// The runner is a `Service`: tasks execute as children of ``run()``, so a shutdown of the
/// service group reaches them as cancellation, which stops their process groups.
public actor TaskRunner: Service {
    /// One job's live state on this host.
    private struct JobSlot {
        let config: JobConfig
        let executor: TaskExecutor
        var enabled: Bool
        var canSchedule: Bool
        var queue: [TaskRecord] = []
        var running: [String: RunningTask] = [:]
        /// Ended, completion not yet committed: no longer holds a slot, still "executing" for
        /// `/api/check` (start time by id).
        var finishing: [String: Int64] = [:]
        /// Admitted, waiting for the journal to commit.
        var reserved = 0

        var slots: Int {
            switch config.overlap {
            case .concurrent: return config.maxConcurrency
            case .serial, .discard, .cover: return 1
            }
        }

        var active: Int { running.count + queue.count + reserved }
    }

    /// A started task: what is needed to stop it and to answer `/api/check`.
    private struct RunningTask {
        let record: TaskRecord
        let startTime: Int64
        let progress: TaskProgress
        let stop: AsyncStream<StopReason>.Continuation
    }

    /// A task handed to ``run()`` to execute.
    private struct StartOrder: Sendable {
        let record: TaskRecord
        let startTime: Int64
        let progress: TaskProgress
        let stops: AsyncStream<StopReason>
        let stop: AsyncStream<StopReason>.Continuation
        /// The journal write recording the start, submitted when the slot was given.
        let startJournaled: CommitTicket
    }

    /// A job with running or queued tasks, for `/api/check/$ip.do`.
    public struct ActiveJob: Sendable, Equatable {
        public var name: String
        /// Start of the oldest running task, epoch ms; `nil` when all its tasks are queued.
        public var oldestStart: Int64?
        /// Acceptance time of the oldest queued task, epoch ms; `nil` when none is queued.
        public var oldestQueued: Int64?
        public var running: Int
        public var queued: Int
    }

    private var jobs: [String: JobSlot]
    private var draining = false
    /// The settling of a previous process's leftovers; dispatches wait for it.
    private var recovery: Task<Void, Never>?
    /// Leftovers another authority settled (the cluster gave them to other workers): their
    /// processes are stopped like any leftover's, then they are recorded lost, never rerun.
    private var settledElsewhere: [String: String] = [:]
    private var runningTotal = 0
    private var waitingTotal = 0
    /// The host's journal.
    let store: AgentStore
    private let settings: AgentSettings
    private let idGenerator: TaskIDGenerator
    /// This agent process's `QSCHEDULE_AGENT_INSTANCE`, recorded with each command's pid.
    private let instance: String
    private let logDirectory: String
    private let runDirectory: String
    private let logger: Logger
    /// `[report] outbox_max`, when finished tasks are reported.
    private let outboxLimit: Int?
    private let starts: AsyncStream<StartOrder>
    private let startContinuation: AsyncStream<StartOrder>.Continuation

    init(
        jobs: [(JobConfig, TaskExecutor)],
        states: [String: JobStateRecord],
        store: AgentStore,
        settings: AgentSettings,
        instance: String = UUID().uuidString,
        idGenerator: TaskIDGenerator,
        outboxLimit: Int? = nil,
        logger: Logger
    ) throws {
        var slots: [String: JobSlot] = [:]
        for (config, executor) in jobs {
            let state = states[config.name]
            slots[config.name] = JobSlot(
                config: config, executor: executor,
                enabled: state?.enabled ?? config.enabled,
                canSchedule: state?.canSchedule ?? true)
        }
        self.jobs = slots
        self.store = store
        self.settings = settings
        self.idGenerator = idGenerator
        self.instance = instance
        self.logger = logger
        self.outboxLimit = outboxLimit
        logDirectory = URL(fileURLWithPath: settings.dataDir).appendingPathComponent("logs").path
        runDirectory = URL(fileURLWithPath: settings.dataDir).appendingPathComponent("run").path
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        (starts, startContinuation) = AsyncStream.makeStream(of: StartOrder.self)
    }

    // MARK: Service

    /// Executes started tasks until shutdown. On graceful shutdown no new task starts; the
    /// running ones finish (or are cancelled when the service group's grace runs out).
    public nonisolated func run() async throws {
        await recoverLeftovers()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await order in starts {
                    group.addTask { await self.execute(order) }
                }
            }
        } onGracefulShutdown: {
            self.startContinuation.finish()
        }
    }

    // MARK: Jobs

    /// The configuration of every job on this host, sorted by name.
    public var jobConfigs: [JobConfig] { jobs.values.map(\.config).sorted { $0.name < $1.name } }

    /// The configuration of one job, or `nil` when it is not registered here.
    public func jobConfig(_ name: String) -> JobConfig? { jobs[name]?.config }

    /// Whether the job is enabled (stored state, else `agent.conf`).
    public func isEnabled(_ name: String) -> Bool? { jobs[name]?.enabled }

    /// Names of the jobs this host takes work for (not taken offline here), sorted.
    public var schedulableJobs: [String] { jobs.filter(\.value.canSchedule).keys.sorted() }

    /// Whether this host takes work for the job.
    public func canSchedule(_ name: String) -> Bool? { jobs[name]?.canSchedule }

    /// Switches jobs on or off, all or none. Returns `false` (changing nothing) when a name
    /// is not registered here; throws when the store cannot record the change.
    public func setEnabled(_ enabled: Bool, jobs names: [String]) throws -> Bool {
        guard names.allSatisfy({ jobs[$0] != nil }) else { return false }
        try store.setEnabled(enabled, jobs: names)
        for name in names { jobs[name]?.enabled = enabled }
        return true
    }

    /// Takes this host on or off for a job's dispatches and fires.
    public func setCanSchedule(_ canSchedule: Bool, job name: String) throws {
        guard jobs[name] != nil else { return }
        try store.setCanSchedule(canSchedule, job: name)
        jobs[name]?.canSchedule = canSchedule
    }

    /// Stops accepting new tasks (`draining`) or resumes. Returns `false` (and stays
    /// draining) when asked to resume during a shutdown.
    @discardableResult
    public func setDraining(_ draining: Bool) -> Bool {
        guard draining || !shuttingDown else { return false }
        if draining, !self.draining { drainingSince = Date().epochMilliseconds }
        if !draining { drainingSince = nil }
        self.draining = draining
        return true
    }

    /// Drains for good: the agent is stopping; ``setDraining(_:)`` can no longer resume.
    public func beginShutdown() {
        setDraining(true)
        shuttingDown = true
    }

    /// When the current drain began (epoch ms), or `nil` when not draining.
    public private(set) var drainingSince: Int64?

    /// Whether the agent is stopping (a signal was received).
    public private(set) var shuttingDown = false

    /// Ids of the tasks running now, oldest first (with those whose completion is still being
    /// journaled: they are not over until it commits).
    public var runningTaskIDs: [String] {
        jobs.values.flatMap { slot in
            slot.running.values.map { ($0.startTime, $0.record.id) } + slot.finishing.map { ($0.value, $0.key) }
        }.sorted { $0 < $1 }.map(\.1)
    }

    // MARK: Dispatch

    /// Admits a task for `job`, journals it, and queues it to run.
    ///
    /// With a caller-given `taskID` the call is idempotent: a task id already journaled for
    /// this job answers `accepted` again and does not run again. `hostSwitches: false` is for
    /// tasks admitted by an authority that keeps the job's on/off and worker switches itself
    /// (the cluster); drain, queue limits and the outbox bound still apply. `attempt`: the
    /// attempt number the admitting authority gave this run (the cluster's retries count there).
    public func dispatch(
        job name: String,
        param: JSONValue,
        taskID requestedID: String? = nil,
        trigger: TaskTrigger = .dispatch,
        scheduledAt: Int64? = nil,
        hostSwitches: Bool = true,
        attempt: Int = 1
    ) async -> DispatchResult {
        // A task journaled before recovery read the journal would be taken for a leftover.
        await recoverLeftovers()
        var reopened: TaskRecord?
        if let requestedID {
            do {
                if let existing = try store.task(requestedID) {
                    // A later attempt of a task this host finished (its admitting authority
                    // retried it here): journaled again under that attempt, below.
                    guard existing.status == .finished, attempt > existing.attempt, Self.repeated(existing, job: name, param: param) != .refused(.taskIDConflict)
                    else { return Self.repeated(existing, job: name, param: param) }
                    reopened = existing
                }
            } catch {
                logger.error("journal read failed", metadata: ["task": "\(requestedID)", "error": "\(error)"])
                return .journalFailed
            }
        }
        guard var slot = jobs[name] else { return .refused(.jobNotFound) }
        guard slot.enabled || !hostSwitches else { return .refused(.jobDisabled) }
        guard !draining else { return .refused(.draining) }
        guard slot.canSchedule || !hostSwitches else { return .refused(.workerOffline) }
        switch slot.config.overlap {
        case .discard:
            if slot.active > 0 { return .refused(.jobBusy) }
        case .concurrent, .serial:
            if slot.active >= slot.slots + slot.config.maxQueued { return .refused(.overloaded) }
        case .cover:
            break  // a newer task supersedes the others: the job never holds more than two
        }
        if runningTotal + waitingTotal >= settings.maxRunning + settings.maxQueued { return .refused(.overloaded) }
        if let outboxLimit, store.outboxDepth.value + unreportedTasks >= outboxLimit { return .refused(.outboxFull) }

        slot.reserved += 1
        jobs[name] = slot
        waitingTotal += 1
        let answer: JournalAnswer
        if let reopened {
            answer = await reopen(reopened, attempt: attempt)
        } else {
            answer = await journal(job: name, param: param, requestedID: requestedID, trigger: trigger, scheduledAt: scheduledAt, attempt: attempt)
        }
        jobs[name]?.reserved -= 1
        waitingTotal -= 1
        guard case .accepted = answer, let record = answer.record else { return answer.result }
        jobs[name]?.queue.append(record)
        waitingTotal += 1
        if jobs[name]?.config.overlap == .cover { await cover(job: name, by: record.id) }
        pump()
        return answer.result
    }

    /// The outcome of trying to journal one task.
    private enum JournalAnswer {
        case accepted(TaskRecord)
        case other(DispatchResult)

        var record: TaskRecord? {
            if case .accepted(let record) = self { return record }
            return nil
        }

        var result: DispatchResult {
            switch self {
            case .accepted(let record): return .accepted(taskID: record.id)
            case .other(let result): return result
            }
        }
    }

    private func journal(
        job: String, param: JSONValue, requestedID: String?, trigger: TaskTrigger, scheduledAt: Int64?, attempt: Int
    ) async -> JournalAnswer {
        for _ in 0..<5 {
            let now = Date()
            var record = TaskRecord(
                id: requestedID ?? idGenerator.next(at: now), job: job, param: param.jsonText,
                trigger: trigger, acceptedAt: now.epochMilliseconds, attempt: attempt)
            record.scheduledAt = scheduledAt
            do {
                try await store.insertTask(record)
                return .accepted(record)
            } catch AgentStore.StoreError.duplicateTask {
                guard let requestedID else { continue }
                // Another dispatch with this id committed first: answer as for a repeat.
                guard let existing = try? store.task(requestedID) else { return .other(.journalFailed) }
                return .other(Self.repeated(existing, job: job, param: param))
            } catch {
                logger.error("journal write failed", metadata: ["task": "\(record.id)", "error": "\(error)"])
                return .other(.journalFailed)
            }
        }
        return .other(.journalFailed)
    }

    private func reopen(_ record: TaskRecord, attempt: Int) async -> JournalAnswer {
        do {
            guard try await store.reopenTask(record.id, attempt: attempt) else { return .other(.accepted(taskID: record.id)) }
            var again = record
            again.attempt = attempt
            again.status = .queued
            again.acceptedAt = Date().epochMilliseconds
            (again.result, again.startTime, again.endTime, again.duration, again.pid, again.exitCode, again.signal, again.message) =
                (.none, nil, nil, nil, nil, nil, nil, "")
            return .accepted(again)
        } catch {
            logger.error("journal write failed", metadata: ["task": "\(record.id)", "error": "\(error)"])
            return .other(.journalFailed)
        }
    }

    /// The answer to a task id that is already journaled: the same answer when it is the same
    /// task (job and param; the param compared in its canonical text, so key order does not
    /// matter), else `task_id_conflict`.
    /// A new task id in the seed's shape, from this runner's generator (one sequence per process).
    public func newTaskID() -> String {
        idGenerator.next(at: Date())
    }

    private static func repeated(_ existing: TaskRecord, job: String, param: JSONValue) -> DispatchResult {
        existing.job == job && existing.param == param.jsonText ? .accepted(taskID: existing.id) : .refused(.taskIDConflict)
    }

    /// `overlap = "cover"`: a newer task stops the running ones and supersedes the waiting ones.
    private func cover(job name: String, by newID: String) async {
        guard var slot = jobs[name] else { return }
        for running in slot.running.values { running.stop.yield(.covered(by: newID)) }
        let superseded = slot.queue.filter { $0.id != newID }
        slot.queue.removeAll { $0.id != newID }
        jobs[name] = slot
        waitingTotal -= superseded.count
        let now = Date().epochMilliseconds
        await settle(superseded.map { record in
            TaskCompletion(
                taskID: record.id, job: name, result: .killed, startTime: now, endTime: now,
                message: StopReason.covered(by: newID).message)
        })
    }

    /// Asks a running task to stop (`499`), or removes a queued one. Returns `false` when
    /// no active task has this id.
    public func kill(taskID: String) async -> Bool {
        await stop(taskID: taskID, because: .killed)
    }

    /// Stops every running and queued task with `reason`; returns how many.
    @discardableResult
    func stopAll(because reason: StopReason) async -> Int {
        let ids = jobs.values.flatMap { slot in slot.running.keys.map { $0 } + slot.queue.map(\.id) }
        var stopped = 0
        for id in ids where await stop(taskID: id, because: reason) { stopped += 1 }
        return stopped
    }

    /// Stops a running task, or removes a queued one, recording `reason` (499 for a kill or a
    /// cover). Returns `false` when no active task has this id.
    func stop(taskID: String, because reason: StopReason) async -> Bool {
        for (name, slot) in jobs {
            if let running = slot.running[taskID] {
                running.stop.yield(reason)
                return true
            }
            if let index = slot.queue.firstIndex(where: { $0.id == taskID }) {
                jobs[name]?.queue.remove(at: index)
                waitingTotal -= 1
                let now = Date().epochMilliseconds
                await settle([TaskCompletion(
                    taskID: taskID, job: name, result: reason.result, startTime: now, endTime: now,
                    message: reason.message)])
                return true
            }
        }
        return false
    }

    /// Tasks accepted but not yet in the outbox: each will add one report. Counting them keeps
    /// the outbox within `outbox_max` even when every active task finishes at once.
    private var unreportedTasks: Int {
        runningTotal + waitingTotal + jobs.values.reduce(0) { $0 + $1.finishing.count }
    }

    // MARK: Shutdown and recovery

    /// Shutdown after the grace ran out: stops every running task (recorded per its job's
    /// `recover`: `retry` stays unfinished and runs again at the next start, `discard` is
    /// recorded 503) and settles queued ones the same way. Returns once no task runs, or
    /// after `kill_grace` + 6 s at worst.
    public func stopAllForShutdown() async {
        beginShutdown()
        for (name, slot) in jobs {
            for running in slot.running.values { running.stop.yield(.shutdown) }
            guard !slot.queue.isEmpty else { continue }
            let queued = slot.queue
            jobs[name]?.queue = []
            waitingTotal -= queued.count
            guard slot.config.recover == .discard else { continue }  // retry: stays queued in the journal
            let now = Date().epochMilliseconds
            await settle(queued.map { record in
                TaskCompletion(
                    taskID: record.id, job: name, result: .lost, startTime: now, endTime: now,
                    message: "lost: the agent stopped before it started")
            })
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(settings.killGrace + 6))
        while jobs.values.contains(where: { !$0.running.isEmpty || !$0.finishing.isEmpty }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// At start: tasks a previous agent process left queued or running. Their leftover
    /// processes are killed first — the recorded leader only if its pid still has the same
    /// start time, plus every process carrying the task's environment markers — so a task
    /// id never runs twice at once. Then per job `recover`: `retry` queues the task again
    /// (attempt + 1 if its start was journaled, up to `max_attempts`; the same attempt if it
    /// never started), `discard` records it 503.
    ///
    /// The new attempt number is journaled with the task's start, before anything runs: a
    /// crash before that start leaves the journal as it was, and the next recovery computes
    /// the same attempt again — an attempt number never runs twice.
    ///
    /// Runs once; ``Agent/run(onReady:)`` calls it before the HTTP interface listens, so no
    /// `/api/check` can answer "idle" while leftovers are being settled.
    public func recoverLeftovers() async {
        if let recovery {
            await recovery.value
            return
        }
        // A stored task, so that every caller (and every dispatch) waits for the one recovery.
        let recovery = Task { await self.settleLeftovers() }
        self.recovery = recovery
        await recovery.value
    }

    /// Before ``recoverLeftovers()``: these leftovers (id → why) are not run again here; they
    /// are recorded lost with that message once their processes are stopped.
    func settleElsewhere(_ reasons: [String: String]) {
        settledElsewhere.merge(reasons) { $1 }
    }

    private func settleLeftovers() async {
        let leftovers: [LeftoverTask]
        let earlierInstances: [String]
        do {
            leftovers = try store.leftoverTasks()
            earlierInstances = try store.earlierInstances()
        } catch {
            logger.error("cannot read the journal; leftover tasks are not recovered", metadata: ["error": "\(error)"])
            return
        }
        do {
            try store.registerInstance(instance)
        } catch {
            logger.error("cannot record this agent instance; a crash of this process leaves escaped descendants unswept", metadata: ["error": "\(error)"])
        }
        // One pass over /proc and one grace period for all leftovers together.
        let found = await LeftoverProcesses.stop(tasks: leftovers, earlierInstances: earlierInstances, grace: .seconds(settings.killGrace))
        var lost: [TaskCompletion] = []
        var requeued = 0
        let now = Date().epochMilliseconds
        for leftover in leftovers {
            let task = leftover.record
            // A process found for a task journaled as queued would mean it ran unjournaled:
            // counted as started, so its rerun is a new attempt.
            let started = task.status == .running || found.contains(task.id)
            func lose(_ message: String) {
                lost.append(TaskCompletion(
                    taskID: task.id, job: task.job, result: .lost, startTime: task.startTime ?? now, endTime: now, message: message))
            }
            guard let slot = jobs[task.job] else {
                lose("lost: job \(task.job) is no longer registered on this host")
                continue
            }
            if let reason = settledElsewhere[task.id] {
                lose(reason)
                continue
            }
            switch slot.config.recover {
            case .discard:
                lose(started ? "lost: the agent stopped while it ran" : "lost: the agent stopped before it started")
            case .retry:
                let attempt = started ? task.attempt + 1 : task.attempt
                guard attempt <= slot.config.maxAttempts else {
                    lose("lost: not run again, max_attempts (\(slot.config.maxAttempts)) reached")
                    continue
                }
                var again = task
                again.attempt = attempt
                again.status = .queued
                jobs[task.job]?.queue.append(again)
                waitingTotal += 1
                requeued += 1
            }
        }
        if !leftovers.isEmpty {
            logger.notice("leftover tasks recovered", metadata: [
                "queued_again": "\(requeued)", "lost": "\(lost.count)", "with_processes_killed": "\(found.count)",
            ])
        }
        await settle(lost)
        pump()
    }

    // MARK: Starting and finishing

    /// Starts queued tasks, oldest first, while the host and their jobs have free slots.
    private func pump() {
        while runningTotal < settings.maxRunning {
            var next: (name: String, acceptedAt: Int64)?
            for (name, slot) in jobs where !slot.queue.isEmpty && slot.running.count < slot.slots {
                let head = slot.queue[0].acceptedAt
                if next == nil || head < next!.acceptedAt { next = (name, head) }
            }
            guard let name = next?.name, var slot = jobs[name] else { return }
            let record = slot.queue.removeFirst()
            let (stops, stop) = AsyncStream.makeStream(of: StopReason.self, bufferingPolicy: .bufferingNewest(1))
            let startTime = Date().epochMilliseconds
            let progress = TaskProgress()
            slot.running[record.id] = RunningTask(record: record, startTime: startTime, progress: progress, stop: stop)
            jobs[name] = slot
            waitingTotal -= 1
            runningTotal += 1
            // Submitted now, in the turn that freed the slot: it shares a transaction with the
            // completion of the task that ended (see ``released(_:completion:)``).
            let ticket = store.submitMarkRunning(record.id, attempt: record.attempt, startTime: startTime)
            startContinuation.yield(StartOrder(
                record: record, startTime: startTime, progress: progress, stops: stops, stop: stop, startJournaled: ticket))
        }
    }

    /// The task's handler ended: its completion is submitted to the journal, and its slot goes
    /// to the next task, whose start is submitted in the same turn — one transaction for both.
    private func released(_ record: TaskRecord, completion: TaskCompletion) -> CommitTicket {
        let ticket = store.submitFinish([completion])
        guard let running = jobs[record.job]?.running.removeValue(forKey: record.id) else { return ticket }
        jobs[record.job]?.finishing[record.id] = running.startTime
        runningTotal -= 1
        pump()
        return ticket
    }

    /// The task is over (completion journaled, or left for recovery by a shutdown).
    private func finished(_ record: TaskRecord) {
        forget(job: record.job, taskID: record.id)
    }

    private func forget(job: String, taskID: String) {
        jobs[job]?.finishing.removeValue(forKey: taskID)
        if jobs[job]?.running.removeValue(forKey: taskID) != nil {
            runningTotal -= 1
        }
        pump()
    }

    /// Records tasks that end without running (killed or covered while queued, lost at
    /// recovery or shutdown). They stay accounted (`/api/check`, status) until the record
    /// commits; while the journal fails (disk full) the write is retried with backoff in the
    /// background, so the caller is not held.
    private func settle(_ completions: [TaskCompletion]) async {
        guard !completions.isEmpty else { return }
        for completion in completions { jobs[completion.job]?.finishing[completion.taskID] = completion.startTime }
        do {
            try await store.finishTasks(completions)
        } catch {
            logger.error("journal write failed; retrying in the background", metadata: [
                "tasks": "\(completions.count)", "first": "\(completions[0].taskID)", "error": "\(error)",
            ])
            let store = self.store
            Task {
                _ = await self.persist("completion", task: completions[0].taskID) { try await store.finishTasks(completions) }
                self.forget(completions)
            }
            return
        }
        forget(completions)
    }

    private func forget(_ completions: [TaskCompletion]) {
        for completion in completions { forget(job: completion.job, taskID: completion.taskID) }
    }

    /// Runs a journal write until it commits: a failure (disk full, I/O error) is retried with
    /// capped exponential backoff (50 ms to 5 s) while the task stays accounted in memory.
    /// Returns `false` only when this task was cancelled (shutdown) or the store was closed:
    /// the journal then still holds the task's previous state, which the next start settles.
    private nonisolated func persist(_ what: String, task id: String, _ write: @Sendable () async throws -> Void) async -> Bool {
        var delay = Duration.milliseconds(50)
        var failures = 0
        while true {
            do {
                try await write()
                if failures > 0 {
                    logger.notice("journal write succeeded after failures", metadata: ["task": "\(id)", "write": "\(what)", "failures": "\(failures)"])
                }
                return true
            } catch {
                failures += 1
                if store.isClosed { return false }
                if failures == 1 || failures.isMultiple(of: 60) {
                    logger.error("journal write failed; retrying", metadata: [
                        "task": "\(id)", "write": "\(what)", "failures": "\(failures)", "error": "\(error)",
                    ])
                }
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return false
                }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    private nonisolated func execute(_ order: StartOrder) async {
        let record = order.record
        guard let config = await jobConfig(record.job), let executor = await jobs[record.job]?.executor else { return }
        let logPath = logDirectory + "/" + record.id + ".log"
        // The start is durable before anything of the task runs: from here on a crash settles
        // it as started (attempt + 1 or 503), never reruns it under this attempt number.
        let store = self.store
        let started: Bool
        do {
            try await order.startJournaled.wait()
            started = true
        } catch {
            started = await persist("start", task: record.id) {
                try await store.markRunning(record.id, attempt: record.attempt, startTime: order.startTime)
            }
        }
        guard started else {
            // Shut down while the journal failed: nothing ran; the journal keeps the task's
            // previous state for the next start.
            await finished(record)
            return
        }
        var outcome: ExecutionOutcome
        do {
            let log = TaskLog(path: logPath, maxBytes: settings.maxLogBytes)
            defer { log.close() }
            let deadline = config.timeout > 0 ? Date(timeIntervalSince1970: Double(order.startTime) / 1000 + Double(config.timeout)) : nil
            let context = TaskContext(
                taskID: record.id, job: record.job, paramText: record.param,
                attempt: record.attempt, deadline: deadline, log: log, progress: order.progress)
            let run = StoppableRun(store: store, runDirectory: runDirectory, instance: instance, killGrace: settings.killGrace)
            outcome = await run.run(
                executor, context: context, timeout: config.timeout, startTime: order.startTime, stops: order.stops, stop: order.stop)
        }
        if outcome.stoppedBy == .shutdown, config.recover == .retry {
            // Shutdown stopped it: the journal keeps it unfinished; the next start runs it again.
            logger.notice("task stopped by shutdown; it runs again at the next start", metadata: ["task": "\(record.id)", "job": "\(record.job)"])
            await finished(record)
            return
        }
        if Task.isCancelled, outcome.stoppedBy == nil {
            // Stopped by shutdown, not by a decision about this task: the journal keeps it
            // unfinished so the next start settles it by the job's recover policy.
            logger.warning("task stopped by shutdown", metadata: ["task": "\(record.id)", "job": "\(record.job)"])
            await finished(record)
            return
        }
        let end = Date().epochMilliseconds
        let completion = TaskCompletion(
            taskID: record.id, job: record.job, result: outcome.result, startTime: order.startTime, endTime: end,
            exitCode: outcome.exitCode, signal: outcome.signal, message: outcome.message)
        // Until this commits the task stays "finishing": /api/check and status still count it.
        do {
            try await released(record, completion: completion).wait()
        } catch {
            _ = await persist("completion", task: record.id) { try await store.finishTask(completion) }
        }
        await finished(record)
    }

    // MARK: Reads

    /// Jobs with at least one running or queued task (admissions awaiting the journal count
    /// as queued: a deploy must not read "idle" while a dispatch is being acknowledged).
    public func activeJobs() -> [ActiveJob] {
        let now = Date().epochMilliseconds
        return jobs.values.compactMap { slot -> ActiveJob? in
            guard slot.active + slot.finishing.count > 0 else { return nil }
            let oldestQueued = slot.queue.map(\.acceptedAt).min() ?? (slot.reserved > 0 ? now : nil)
            return ActiveJob(
                name: slot.config.name,
                oldestStart: (slot.running.values.map(\.startTime) + slot.finishing.values).min(),
                oldestQueued: oldestQueued,
                running: slot.running.count + slot.finishing.count,
                queued: slot.queue.count + slot.reserved)
        }.sorted { $0.name < $1.name }
    }

    /// Live state of an active task: `running` with its progress, or `queued`; `nil` when
    /// the task is not active here (finished, unknown).
    func activeTask(_ id: String) -> (status: TaskStatus, progress: TaskProgress.Snapshot?)? {
        for slot in jobs.values {
            if let running = slot.running[id] { return (.running, running.progress.snapshot) }
            if slot.queue.contains(where: { $0.id == id }) { return (.queued, nil) }
        }
        return nil
    }

    /// Tasks running (or whose completion is still being journaled) and waiting on this host.
    public var counts: (running: Int, waiting: Int) {
        (runningTotal + jobs.values.reduce(0) { $0 + $1.finishing.count }, waitingTotal)
    }

    /// Whether the runner refuses new work.
    public var isDraining: Bool { draining }
}

extension Date {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    var epochMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
}
