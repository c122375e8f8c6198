import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Fires the cluster's cron jobs (DESIGN §10, exactly-once fires): each fire is a task row
/// whose id is `<job>:<scheduled ms>`, unique on (job, scheduled time), created and admitted
/// to a worker in one transaction (``ClusterAdmission``). One agent per job fires
/// (the first in rendezvous order), the second a moment later as a backup; both may run, one
/// row results.
final class ClusterFirer: Service, Sendable {
    private let admission: ClusterAdmission
    private let view: ClusterView
    private let identity: AgentIdentity
    /// The cron jobs and their misfire policies; replaced by a reload.
    private let plan: Mutex<(jobs: [String: CronExpression], misfire: [String: MisfirePolicy], generation: Int)>
    /// Wakes the fire loop after a reload replaced the plan.
    private let replanned = WakeSignal()
    private var jobs: [String: CronExpression] { plan.withLock { $0.jobs } }
    private var misfire: [String: MisfirePolicy] { plan.withLock { $0.misfire } }
    /// Per job, the latest fire this agent owned that failed because the database did not
    /// answer: once it answers, `misfire = "fire_once"` fires it (once: the key is its
    /// scheduled time, and only the owner records misses), `skip` drops it. A later fire that
    /// went through late (it waited for the database) clears it: that was the outage's fire.
    private let missed = Mutex<[String: Int64]>([:])
    /// Fires under way, with when each began: a miss is retried only when no fire of its job
    /// has been waiting on the database (longer than a normal fire takes), so a fire that
    /// goes through late, once the database is back, is not followed by a catch-up too.
    private let inFlight = Mutex<(next: UInt64, fires: [UInt64: (job: String, since: ContinuousClock.Instant)])>((0, [:]))
    private let timeZone: TimeZone
    private let logger: Logger
    private let metrics: AgentMetrics?
    private let ready = StartGate()
    /// How long after the scheduled time the backup inserts.
    static let backupDelayMs: Int64 = 2_000
    /// Seconds a fire may take; then it counts as missed (see `misfire`).
    static let fireTimeout = 3
    /// A fire that completes this long after its scheduled time waited for the database.
    static let lateAfterMs: Int64 = 1_000

    init(
        admission: ClusterAdmission, view: ClusterView, identity: AgentIdentity, jobs: [JobConfig], timeZone: TimeZone, metrics: AgentMetrics? = nil,
        logger: Logger
    ) {
        self.metrics = metrics
        self.admission = admission
        self.view = view
        self.identity = identity
        plan = Mutex(Self.plan(for: jobs))
        self.timeZone = timeZone
        self.logger = logger
    }

    private static func plan(for jobs: [JobConfig], generation: Int = 0) -> (jobs: [String: CronExpression], misfire: [String: MisfirePolicy], generation: Int) {
        (Dictionary(uniqueKeysWithValues: jobs.compactMap { job in job.cron.map { (job.name, $0) } }),
         Dictionary(uniqueKeysWithValues: jobs.map { ($0.name, $0.misfire) }), generation)
    }

    /// A reload: the fire loop plans the new crons from now (unchanged ones keep their next
    /// time; a removed job never fires again from here).
    func replaceJobs(_ jobs: [JobConfig]) {
        plan.withLock { $0 = Self.plan(for: jobs, generation: $0.generation + 1) }
        let names = Set(jobs.map(\.name))
        missed.withLock { missed in missed = missed.filter { names.contains($0.key) } }
        replanned.signal()
    }

    /// Called once this agent is a registered member: its address is final.
    func start() {
        ready.open()
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            await self.fireLoop()
        }
    }

    private func fireLoop() async {
        var queue = FireQueue()
        var (planned, generation) = plan.withLock { ($0.jobs, $0.generation) }
        let now = Date()
        for (name, cron) in planned {
            if let next = cron.next(after: now, in: timeZone) { queue.insert(.init(time: next.epochMilliseconds, job: name)) }
        }
        while !Task.isCancelled {
            let (current, latest) = plan.withLock { ($0.jobs, $0.generation) }
            if latest != generation {
                generation = latest
                // Replanned by a reload: unchanged crons keep their queued time, others start from now.
                var kept = FireQueue()
                while let entry = queue.removeFirst() {
                    if current[entry.job] == planned[entry.job] { kept.insert(entry) }
                }
                let now = Date()
                for (name, cron) in current where planned[name] != cron {
                    if let next = cron.next(after: now, in: timeZone) { kept.insert(.init(time: next.epochMilliseconds, job: name)) }
                }
                queue = kept
                planned = current
            }
            let now = Date().epochMilliseconds
            guard let first = queue.first else {
                // Nothing (more) to fire, until a reload brings a cron job.
                await replanned.wait(timeout: .seconds(30))
                continue
            }
            guard first.time <= now else {
                let pending = missed.withLock { $0 }
                if !pending.isEmpty { await retryMissed(pending) }
                await replanned.wait(timeout: .milliseconds(max(1, min(first.time - now, pending.isEmpty ? 30_000 : 1_000))))
                continue
            }
            let entry = queue.removeFirst()!
            switch view.fireRank(job: entry.job, address: identity.address) {
            case 0:
                Task { await self.fire(job: entry.job, scheduledAt: entry.time) }
            case 1:
                Task {
                    try await Task.sleep(for: .milliseconds(Self.backupDelayMs))
                    await self.fire(job: entry.job, scheduledAt: entry.time, asBackup: true)
                }
            default:
                break
            }
            if let cron = planned[entry.job], let next = cron.next(after: Date(timeIntervalSince1970: Double(entry.time) / 1000), in: timeZone) {
                queue.insert(.init(time: next.epochMilliseconds, job: entry.job))
            }
        }
    }

    /// Creates the fire (nothing when it exists, is disabled or its job is busy under
    /// `discard`); it waits `pending` when no worker or slot is free.
    /// Fires missed while the database was down, per the job's `misfire`.
    private func retryMissed(_ pending: [String: Int64]) async {
        let now = ContinuousClock.now
        let waiting = Set(inFlight.withLock { state in state.fires.values.filter { now - $0.since > .milliseconds(500) }.map(\.job) })
        for (job, scheduledAt) in pending where !waiting.contains(job) {
            missed.withLock { if $0[job] == scheduledAt { $0[job] = nil } }
            guard misfire[job] == .fireOnce else {
                metrics?.cronSkipped(job: job, reason: "misfire")
                logger.notice("cluster fire missed while the database did not answer: skipped (misfire = skip)", metadata: [
                    "job": "\(job)", "scheduled": "\(scheduledAt)",
                ])
                continue
            }
            await fire(job: job, scheduledAt: scheduledAt)  // fails again → recorded again
        }
    }

    /// `asBackup`: look first (one cheap statement), since the owner has most likely fired.
    func fire(job: String, scheduledAt: Int64, asBackup: Bool = false) async {
        let task = ClusterAdmission.NewTask(id: "\(job):\(scheduledAt)", job: job, scheduledAt: scheduledAt)
        let ticket = inFlight.withLock { state -> UInt64 in
            state.next += 1
            state.fires[state.next] = (job, ContinuousClock.now)
            return state.next
        }
        defer { inFlight.withLock { _ = $0.fires.removeValue(forKey: ticket) } }
        do {
            // Bounded: the pool queues queries while the database is away, and a fire that
            // waited would run late; failed, it is a missed fire and follows `misfire`.
            let outcome = try await ClusterDatabase.withTimeout(Self.fireTimeout, what: "fire") { [admission] in
                if asBackup, try await admission.exists(task.id) { return ClusterAdmission.Outcome.exists(job: job, param: "{}") }
                return try await admission.create(task)
            }
            // A fire that went through late (it waited for the database to come back) is the
            // outage's fire: the earlier misses need no catch-up. An on-time one is not.
            if Date().epochMilliseconds - scheduledAt > Self.lateAfterMs {
                missed.withLock { if let earlier = $0[job], earlier <= scheduledAt { $0[job] = nil } }
            }
            switch outcome {
            case .refused(let reason):
                metrics?.cronSkipped(job: job, reason: reason.rawValue)
                if reason != .jobDisabled {
                    logger.notice("cluster fire skipped", metadata: ["job": "\(job)", "scheduled": "\(scheduledAt)", "reason": "\(reason.rawValue)"])
                }
            case .created:
                metrics?.cronFired(job: job)
            default:
                break
            }
        } catch {
            if !asBackup { missed.withLock { $0[job] = max($0[job] ?? scheduledAt, scheduledAt) } }
            logger.error("cluster fire failed", metadata: [
                "job": "\(job)", "scheduled": "\(scheduledAt)",
                "error": "\(ClusterError.describing(error, "fire", settings: admission.database.settings))",
            ])
        }
    }
}
