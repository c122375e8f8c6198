import Foundation
import Logging
import ServiceLifecycle

/// Fires cron jobs on this host when no central scheduler drives it (DESIGN §6).
///
/// Each fire goes through ``TaskRunner/dispatch(job:param:taskID:trigger:scheduledAt:)``,
/// the same path as an HTTP dispatch, with the scheduled time recorded on the task. A fire
/// the runner refuses (job disabled, host offline for the job, draining, overloaded) is a
/// skip, counted by reason. The next time is computed from the scheduled time, never from
/// "now", so fires do not drift. Missed fires — after downtime, or when the process was
/// suspended — follow the job's `misfire` policy.
public actor CronScheduler: Service {
    /// Fire and skip counts since start, for `/api2/agent/status.do`.
    public struct Counters: Sendable, Equatable {
        public var fires = 0
        /// Skips by reason: the refusal reason, or `misfire` for missed fires skipped.
        public var skips: [String: Int] = [:]
    }

    /// A class: the plan's dictionary holds a pointer per job, not the expression (10,000 jobs).
    private final class Job {
        /// The job's config, shared with the runner's (copy-on-write): its cron is not copied.
        private let config: JobConfig
        var next: Int64?

        /// `config` must have a cron.
        init(config: JobConfig, next: Int64?) {
            self.config = config
            self.next = next
        }

        var cron: CronExpression { config.cron! }
        var misfire: MisfirePolicy { config.misfire }
    }

    /// How late a fire may be before it counts as missed (process suspended, clock jump).
    static let misfireThreshold: Int64 = 60_000

    private var jobs: [String: Job] = [:]
    private var queue = FireQueue()
    /// Wakes the fire loop after ``replaceJobs(_:)``.
    private let replanned = WakeSignal()
    private var counters = Counters()
    private let runner: TaskRunner
    private let store: AgentStore
    private let timeZone: TimeZone
    private let logger: Logger
    private let metrics: AgentMetrics?
    private let startedAt: Int64

    /// Plans the next fire of every job with a `cron`, from now.
    public init(jobs configs: [JobConfig], runner: TaskRunner, store: AgentStore, timeZone: TimeZone, metrics: AgentMetrics? = nil, logger: Logger) {
        self.metrics = metrics
        self.runner = runner
        self.store = store
        self.timeZone = timeZone
        self.logger = logger
        let now = Date()
        startedAt = now.epochMilliseconds
        for config in configs {
            guard let cron = config.cron else { continue }
            let next = cron.next(after: now, in: timeZone)?.epochMilliseconds
            jobs[config.name] = Job(config: config, next: next)
            if let next { queue.insert(.init(time: next, job: config.name)) }
        }
    }

    /// The next fire time of `job` in epoch ms, or `nil` when it has no cron or never fires again.
    public func nextRun(_ job: String) -> Int64? { jobs[job]?.next }

    /// A reload: jobs whose cron and misfire are unchanged keep their next fire; new or
    /// changed ones are planned from now; removed ones (and those without a cron now) never
    /// fire again. The queue is rebuilt, so no fire of an old plan is left in it.
    func replaceJobs(_ configs: [JobConfig]) {
        let now = Date()
        var planned: [String: Job] = [:]
        for config in configs {
            guard let cron = config.cron else { continue }
            if let kept = jobs[config.name], kept.cron == cron, kept.misfire == config.misfire {
                planned[config.name] = kept
            } else {
                planned[config.name] = Job(config: config, next: cron.next(after: now, in: timeZone)?.epochMilliseconds)
            }
        }
        jobs = planned
        queue = FireQueue()
        for (name, job) in planned { if let next = job.next { queue.insert(.init(time: next, job: name)) } }
        replanned.signal()
    }

    /// Fires and skips so far.
    public var counts: Counters { counters }

    // MARK: Service

    /// Settles missed fires, then fires due jobs until shutdown (returns, never throws, on
    /// graceful shutdown or cancellation).
    public func run() async throws {
        await settleMissedFires()
        await cancelWhenGracefulShutdown {
            await self.fireLoop()
        }
    }

    private func fireLoop() async {
        while !Task.isCancelled {
            let now = Date().epochMilliseconds
            var due: [FireQueue.Entry] = []
            while let first = queue.first, first.time <= now {
                due.append(queue.removeFirst()!)
            }
            if !due.isEmpty {
                await withTaskGroup(of: Void.self) { group in
                    for entry in due {
                        group.addTask { await self.fire(entry, now: now) }
                    }
                }
                continue
            }
            // Sleep until the next fire; wake at least every 30 s to notice clock jumps, and at
            // once when a reload changed the jobs.
            let wait = min(queue.first.map { $0.time - now } ?? 30_000, 30_000)
            await replanned.wait(timeout: .milliseconds(max(1, wait)))
            if Task.isCancelled { return }
        }
    }

    private func fire(_ entry: FireQueue.Entry, now: Int64) async {
        // A fire taken from the queue before a reload replanned its job is dropped.
        guard let job = jobs[entry.job], job.next == entry.time else { return }
        if now - entry.time > Self.misfireThreshold, job.misfire == .skip {
            // Missed (the process was suspended or the clock jumped): skip to the next time after now.
            count(skip: "misfire", job: entry.job)
            logger.warning("cron fire missed", metadata: ["job": "\(entry.job)", "scheduled": "\(entry.time)"])
        } else {
            await dispatch(job: entry.job, scheduledAt: entry.time)
        }
        try? await store.setLastFire(entry.time, job: entry.job)
        var after = Date(timeIntervalSince1970: Double(entry.time) / 1000)
        if now - entry.time > Self.misfireThreshold { after = Date(timeIntervalSince1970: Double(now) / 1000) }
        let next = job.cron.next(after: after, in: timeZone)?.epochMilliseconds
        jobs[entry.job]?.next = next
        if let next { queue.insert(.init(time: next, job: entry.job)) }
    }

    private func dispatch(job: String, scheduledAt: Int64) async {
        switch await runner.dispatch(job: job, param: .object([:]), trigger: .cron, scheduledAt: scheduledAt) {
        case .accepted:
            counters.fires += 1
            metrics?.cronFired(job: job)
        case .refused(let reason):
            count(skip: reason.rawValue, job: job)
        case .journalFailed, .clusterUnavailable:
            count(skip: FailureReason.journalFailed, job: job)
        }
    }

    private func count(skip reason: String, job: String) {
        counters.skips[reason, default: 0] += 1
        metrics?.cronSkipped(job: job, reason: reason)
    }

    /// At start: fires missed while the agent was down follow each job's `misfire` policy.
    private func settleMissedFires() async {
        let states: [String: JobStateRecord]
        do {
            states = try store.jobStates()
        } catch {
            logger.error("cannot read cron state; missed fires are not settled", metadata: ["error": "\(error)"])
            return
        }
        for (name, job) in jobs.sorted(by: { $0.key < $1.key }) {
            guard let lastFire = states[name]?.lastFire,
                  let missed = job.cron.next(after: Date(timeIntervalSince1970: Double(lastFire) / 1000), in: timeZone)?.epochMilliseconds,
                  missed < startedAt else { continue }
            switch job.misfire {
            case .skip:
                count(skip: "misfire", job: name)
                logger.info("cron fires missed while down were skipped", metadata: ["job": "\(name)", "first_missed": "\(missed)"])
            case .fireOnce:
                logger.info("cron fires missed while down: firing once", metadata: ["job": "\(name)", "first_missed": "\(missed)"])
                await dispatch(job: name, scheduledAt: missed)
            }
            try? await store.setLastFire(missed, job: name)
        }
    }
}
