import DequeModule
import Foundation
import Logging
import NIOPosix
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
    /// A job's definition and how it runs, shared by reference: the slots' dictionary then
    /// holds a pointer per job, not the whole definition (10,000 jobs).
    final class JobDefinition: Sendable {
        let config: JobConfig
        let executor: TaskExecutor

        init(config: JobConfig, executor: TaskExecutor) {
            self.config = config
            self.executor = executor
        }
    }

    /// One job's live state on this host.
    struct JobSlot {
        var definition: JobDefinition
        var config: JobConfig { definition.config }
        var executor: TaskExecutor { definition.executor }
        /// Removed from `agent.conf` by a reload: takes no new task; its active ones finish,
        /// then the slot goes.
        var retiring = false
        var enabled: Bool
        var canSchedule: Bool
        /// Admitted and journaled, oldest first (a deque: a flood of thousands queued must
        /// not cost a copy of the queue per started task).
        var queue: Deque<TaskRecord> = []
        var running: [String: RunningTask] = [:]
        /// Ended, completion not yet committed: no longer holds a slot, still "executing" for
        /// `/api/check` (start time by id).
        var finishing: [String: Int64] = [:]
        /// Admitted, waiting for the journal to commit.
        var reserved = 0
        /// Failed, waiting out their retry backoff before they queue again (`retries`).
        var delayed: [String: TaskRecord] = [:]

        var slots: Int {
            switch config.overlap {
            case .concurrent: return config.maxConcurrency
            case .serial, .discard, .cover: return 1
            }
        }

        var active: Int { running.count + queue.count + reserved + delayed.count }

        init(config: JobConfig, executor: TaskExecutor, enabled: Bool, canSchedule: Bool) {
            definition = JobDefinition(config: config, executor: executor)
            self.enabled = enabled
            self.canSchedule = canSchedule
        }
    }

    /// A started task: what is needed to stop it and to answer `/api/check`.
    struct RunningTask {
        let record: TaskRecord
        let startTime: Int64
        let progress: TaskProgress
        let stop: AsyncStream<StopReason>.Continuation
    }

    /// A task handed to ``run()`` to execute.
    struct StartOrder: Sendable {
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

    var jobs: [String: JobSlot]
    private var draining = false
    /// The settling of a previous process's leftovers; dispatches wait for it.
    var recovery: Task<Void, Never>?
    /// Leftovers another authority settled (the cluster gave them to other workers): their
    /// processes are stopped like any leftover's, then they are recorded lost, never rerun.
    var settledElsewhere: [String: String] = [:]
    var runningTotal = 0 { didSet { publishActivity() } }
    var waitingTotal = 0 { didSet { publishActivity() } }
    /// Tasks whose end is being journaled (every slot's `finishing`), kept by
    /// ``markFinishing(job:taskID:since:)`` and ``clearFinishing(job:taskID:)``.
    var finishingTotal = 0 { didSet { publishActivity() } }
    /// Every task held, for readers off the runner (the event loop's idle `/api/check`).
    nonisolated let activity = RunnerActivity()
    /// Tasks admitted by another authority (`hostSwitches: false`: the cluster), which owns
    /// their attempts: this host never retries them itself.
    var admittedElsewhere: Set<String> = []
    /// Tasks queued again by their job's `retries`: their next run appends to their log.
    var retried: Set<String> = []
    /// The host's journal.
    let store: AgentStore
    let settings: AgentSettings
    /// `blocking_threads` threads for handlers' blocking work, shut down when ``run()`` ends.
    let blockingPool: NIOThreadPool
    private let idGenerator: TaskIDGenerator
    /// This agent process's `QSCHEDULE_AGENT_INSTANCE`, recorded with each command's pid.
    let instance: String
    let logDirectory: String
    let runDirectory: String
    let logger: Logger
    /// Task lifecycle log lines and metrics.
    let events: TaskEvents
    /// `[report] outbox_max`, when finished tasks are reported.
    private let outboxLimit: Int?
    let starts: AsyncStream<StartOrder>
    let startContinuation: AsyncStream<StartOrder>.Continuation

    init(
        jobs: [(JobConfig, TaskExecutor)],
        states: [String: JobStateRecord],
        store: AgentStore,
        settings: AgentSettings,
        instance: String = UUID().uuidString,
        idGenerator: TaskIDGenerator,
        outboxLimit: Int? = nil,
        metrics: AgentMetrics? = nil,
        logger: Logger
    ) throws {
        var slots: [String: JobSlot] = [:]
        for (config, executor) in jobs {
            let state = states[config.name]
            slots[config.name] = JobSlot(
                config: config, executor: executor,
                enabled: state?.enabled ?? config.enabled,
                canSchedule: state?.canSchedule ?? true)
            if let stored = state?.enabled, stored != config.enabled {
                logger.notice("job switched \(stored ? "on" : "off") by jobs/\(stored ? "on" : "off").do: the stored state wins over enabled = \(config.enabled) in agent.conf", metadata: [
                    "job": "\(config.name)",
                ])
            }
        }
        self.jobs = slots
        self.store = store
        self.settings = settings
        blockingPool = NIOThreadPool(numberOfThreads: settings.blockingThreads)
        blockingPool.start()
        self.idGenerator = idGenerator
        self.instance = instance
        self.logger = logger
        events = TaskEvents(logger: logger, metrics: metrics)
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
        // Every task is over: no handler waits on the pool any more.
        try? await blockingPool.shutdownGracefully()
    }

    // MARK: Jobs

    /// The configuration of every job on this host, sorted by name.
    public var jobConfigs: [JobConfig] { jobs.values.filter { !$0.retiring }.map(\.config).sorted { $0.name < $1.name } }

    /// The configuration of one job, or `nil` when it is not registered here.
    public func jobConfig(_ name: String) -> JobConfig? { jobs[name]?.config }

    /// Whether the job is enabled (stored state, else `agent.conf`).
    public func isEnabled(_ name: String) -> Bool? { jobs[name]?.enabled }

    /// Names of the jobs this host takes work for (not taken offline here), sorted.
    public var schedulableJobs: [String] { jobs.filter { $0.value.canSchedule && !$0.value.retiring }.keys.sorted() }

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
        if draining, !self.draining {
            drainingSince = Date().epochMilliseconds
            logger.notice("draining: new tasks are refused", metadata: ["running": "\(counts.running)", "waiting": "\(counts.waiting)"])
        }
        if !draining, self.draining { logger.notice("resumed: taking new tasks again") }
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
        let result = await admit(
            job: name, param: param, taskID: requestedID, trigger: trigger, scheduledAt: scheduledAt, hostSwitches: hostSwitches, attempt: attempt)
        if case .refused(let reason) = result { events.refused(job: name, reason: reason.rawValue) }
        return result
    }

    private func admit(
        job name: String, param: JSONValue, taskID requestedID: String?, trigger: TaskTrigger, scheduledAt: Int64?, hostSwitches: Bool, attempt: Int
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
        if let refusal = refusal(job: name, hostSwitches: hostSwitches) { return .refused(refusal) }
        // In place: a copy of the slot held across the journal's await below would make every
        // other admission and start copy the job's whole queue.
        jobs[name]?.reserved += 1
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
        if !hostSwitches { admittedElsewhere.insert(record.id) }
        events.accepted(record)
        jobs[name]?.queue.append(record)
        waitingTotal += 1
        if jobs[name]?.config.overlap == .cover { await cover(job: name, by: record.id) }
        pump()
        return answer.result
    }

    /// Why a new task of `name` cannot be admitted now; `nil` when it can.
    private func refusal(job name: String, hostSwitches: Bool) -> RefusalReason? {
        guard let slot = jobs[name], !slot.retiring else { return .jobNotFound }
        guard slot.enabled || !hostSwitches else { return .jobDisabled }
        guard !draining else { return .draining }
        guard slot.canSchedule || !hostSwitches else { return .workerOffline }
        switch slot.config.overlap {
        case .discard:
            if slot.active > 0 { return .jobBusy }
        case .concurrent, .serial:
            if slot.active >= slot.slots + slot.config.maxQueued { return .overloaded }
        case .cover:
            break  // a newer task supersedes the others: the job never holds more than two
        }
        if runningTotal + waitingTotal >= settings.maxRunning + settings.maxQueued { return .overloaded }
        if let outboxLimit, store.outboxDepth.value + unreportedTasks >= outboxLimit { return .outboxFull }
        return nil
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
        let superseded = slot.queue.filter { $0.id != newID } + slot.delayed.values
        slot.queue.removeAll { $0.id != newID }
        slot.delayed = [:]
        jobs[name] = slot
        waitingTotal -= superseded.count
        let now = Date().epochMilliseconds
        await settle(superseded.map { record in
            TaskCompletion(
                taskID: record.id, job: name, result: .killed, startTime: now, endTime: now,
                message: StopReason.covered(by: newID).message, attempt: record.attempt)
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
        let ids = jobs.values.flatMap { slot in slot.running.keys.map { $0 } + slot.queue.map(\.id) + slot.delayed.keys }
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
            let waiting = slot.queue.firstIndex { $0.id == taskID }.map { slot.queue[$0] } ?? slot.delayed[taskID]
            if let record = waiting {
                jobs[name]?.queue.removeAll { $0.id == taskID }
                jobs[name]?.delayed.removeValue(forKey: taskID)
                waitingTotal -= 1
                let now = Date().epochMilliseconds
                await settle([TaskCompletion(
                    taskID: taskID, job: name, result: reason.result, startTime: now, endTime: now,
                    message: reason.message, attempt: record.attempt)])
                return true
            }
        }
        return false
    }

    /// Tasks accepted but not yet in the outbox: each will add one report. Counting them keeps
    /// the outbox within `outbox_max` even when every active task finishes at once.
    private var unreportedTasks: Int {
        runningTotal + waitingTotal + finishingTotal
    }

    /// Whether the runner refuses new work.
    public var isDraining: Bool { draining }
}

extension Date {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    var epochMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
}
