import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Takes the cluster tasks assigned to this agent and runs them through the local runner
/// (DESIGN §10, dispatch and wake-up): woken by LISTEN/NOTIFY on its own channel, polling every
/// heartbeat interval as the fallback. A claim marks at most 16 rows `claimed` (`FOR UPDATE SKIP LOCKED`),
/// then each is dispatched locally under its cluster id — idempotent, so rows claimed by a
/// process that died before journaling them are dispatched again at the next start. A task
/// the runner refuses (overloaded, draining) is handed back for another worker, at most
/// ``ClusterAdmission/maxHandbacks`` times. A `cover` notice stops the task it names. Every
/// few seconds it admits the pending tasks of the jobs it fires (a worker came back, a slot
/// freed while nobody was looking).
final class ClusterWorker: Service, Sendable {
    private let database: ClusterDatabase
    private let admission: ClusterAdmission
    private let view: ClusterView
    private let identity: AgentIdentity
    private let runner: TaskRunner
    private let logger: Logger
    private let ready = StartGate()
    /// Set by a notification naming this worker; the claim loop waits on it (or a second).
    private let wake = WakeSignal()
    static let claimBatch = 16
    /// How often each agent deletes finished cluster tasks older than `retention_days`.
    static let pruneInterval = Duration.seconds(600)
    /// Rows one prune deletes at most (a long backlog goes over several rounds).
    static let pruneBatch = 5_000

    /// Finished cluster tasks are kept this many days (`[agent] retention_days`, as the local journal).
    private let retentionDays: Int

    /// Renewed by the membership's heartbeats: no claims without it; when it expires, this
    /// worker stops its tasks (fencing).
    private let lease: ClusterLease

    /// The local journal (leftovers at start).
    private let store: AgentStore

    init(
        admission: ClusterAdmission, view: ClusterView, lease: ClusterLease, identity: AgentIdentity, runner: TaskRunner, store: AgentStore,
        retentionDays: Int, logger: Logger
    ) {
        self.store = store
        self.lease = lease
        self.retentionDays = retentionDays
        self.database = admission.database
        self.admission = admission
        self.view = view
        self.identity = identity
        self.runner = runner
        self.logger = logger
    }

    /// Called once this agent is a registered member.
    func start() {
        ready.open()
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.ready.wait()
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listen() }
                group.addTask { await self.claimLoop() }
                group.addTask { await self.sweepLoop() }
                group.addTask { await self.fenceLoop() }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Holds one connection listening on this worker's channel; a notification naming this worker wakes
    /// the claim loop or stops a covered task. Reconnects after a second when the connection is lost.
    private func listen() async {
        let address = identity.address
        while !Task.isCancelled {
            do {
                try await database.client.withConnection { connection in
                    try await connection.listen(on: ClusterNotice.channel(for: address)) { notifications in
                        for try await notification in notifications {
                            guard let notice = ClusterNotice(payload: notification.payload), notice.worker == address else { continue }
                            switch notice {
                            case .work:
                                self.wake.signal()
                            case .cover(_, let taskID, let newer):
                                _ = await self.runner.stop(taskID: taskID, because: .covered(by: newer))
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("cluster LISTEN lost; polling meanwhile", metadata: [
                    "error": "\(ClusterError.describing(error, "listen", settings: database.settings))",
                ])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func claimLoop() async {
        // First the rows this address claimed before (a previous process): dispatch is idempotent.
        await dispatchAll(status: "claimed")
        var lastRecheck = ContinuousClock.now
        while !Task.isCancelled {
            // A claim the database committed but whose answer was lost (a connection cut at that
            // moment) leaves rows claimed here and never dispatched: every few seconds this
            // worker's claimed rows are dispatched again (idempotent: journaled ones never rerun).
            if lease.isValid(), ContinuousClock.now - lastRecheck > .seconds(5 * database.settings.heartbeatInterval) {
                lastRecheck = ContinuousClock.now
                await dispatchAll(status: "claimed")
            }
            // No lease, no claims: what this worker claims now it could not hold.
            let claimed = lease.isValid() ? await dispatchAll(status: "assigned") : 0
            if claimed == Self.claimBatch { continue }  // more may wait
            // Until a notification, or a heartbeat interval at most (the fallback poll: the
            // idle polls of a thousand agents are most of the database's background work).
            await wake.wait(timeout: .seconds(database.settings.heartbeatInterval))
        }
    }

    /// Claims up to a batch of this worker's rows in `status` and dispatches them; returns how many.
    @discardableResult
    private func dispatchAll(status: String) async -> Int {
        let address = identity.address
        let batch = Self.claimBatch
        var tasks: [(id: String, job: String, param: String, scheduledAt: Int64?, attempt: Int)] = []
        do {
            let rows = try await database.client.query("""
                UPDATE qagent_task SET status = 'claimed', claimed_at = now()
                WHERE id IN (
                    SELECT id FROM qagent_task WHERE worker = \(address) AND status = \(status)
                    ORDER BY created_at LIMIT \(batch) FOR UPDATE SKIP LOCKED)
                RETURNING id, job, param, scheduled_at, attempt
                """, logger: logger)
            for try await (id, job, param, scheduledAt, attempt) in rows.decode((String, String, String, Int64?, Int).self) {
                tasks.append((id, job, param, scheduledAt, attempt))
            }
        } catch {
            logger.error("cluster claim failed", metadata: ["error": "\(ClusterError.describing(error, "claim", settings: database.settings))"])
            return 0
        }
        for task in tasks {
            let param = JSONValue(parsing: task.param) ?? .object([:])
            let trigger: TaskTrigger = task.scheduledAt == nil ? .dispatch : .cron
            let result = await runner.dispatch(
                job: task.job, param: param, taskID: task.id, trigger: trigger, scheduledAt: task.scheduledAt, hostSwitches: false,
                attempt: task.attempt)
            switch result {
            case .accepted:
                break
            case .refused(let reason):
                await handBack(task.id, job: task.job, reason: reason.rawValue)
            case .journalFailed, .clusterUnavailable:
                await handBack(task.id, job: task.job, reason: FailureReason.journalFailed)
            }
        }
        return tasks.count
    }

    /// Gives a refused task back for another worker (bounded; see ``ClusterAdmission/handBack``).
    private func handBack(_ id: String, job: String, reason: String) async {
        do {
            try await admission.handBack(taskID: id, job: job, by: identity.address, reason: reason)
            logger.notice("cluster task handed back", metadata: ["task": "\(id)", "reason": "\(reason)"])
        } catch {
            logger.error("cluster hand-back failed", metadata: [
                "task": "\(id)", "error": "\(ClusterError.describing(error, "hand back", settings: database.settings))",
            ])
        }
    }

    /// Every heartbeat interval: admits pending tasks of the jobs this agent fires (rank 0), so
    /// each job is swept by one agent, not by all.
    private func sweepLoop() async {
        let address = identity.address
        var lastPrune = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(database.settings.heartbeatInterval))
            if ContinuousClock.now - lastPrune > Self.pruneInterval {
                lastPrune = ContinuousClock.now
                await prune()
            }
            await settleDeadMembers()
            do {
                let rows = try await database.client.query(
                    "SELECT DISTINCT job FROM qagent_task WHERE status = 'pending'", logger: logger)
                var jobs: [String] = []
                for try await job in rows.decode(String.self) where view.fireRank(job: job, address: address) == 0 { jobs.append(job) }
                for job in jobs where await runner.jobConfig(job) != nil { try await admission.admit(job: job) }
            } catch {
                if Task.isCancelled { return }
                logger.warning("cluster admission sweep failed", metadata: [
                    "error": "\(ClusterError.describing(error, "sweep", settings: database.settings))",
                ])
            }
        }
    }

    /// Before the local recovery of a restart: of the cluster tasks the local journal left
    /// unfinished, those the cluster still shows claimed by this worker are kept (their claim
    /// refreshed, so no peer settles them while this agent comes up) and run again by the
    /// recovery; the others — settled by peers after `dead_after`, or reassigned — have their
    /// processes stopped and are recorded lost without running again, so one task never runs
    /// on two workers. With the database unreachable nothing is kept: the start must not
    /// wait, and peers settle them.
    func reconcileLeftovers() async {
        guard let leftovers = try? store.unfinishedTasks(), !leftovers.isEmpty else { return }
        let ids = leftovers.map(\.id)
        let address = identity.address
        var kept = Set<String>()
        do {
            kept = try await ClusterDatabase.withTimeout(5, what: "reconciling leftovers") { [database, logger] in
                let rows = try await database.client.query("""
                    UPDATE qagent_task SET claimed_at = now()
                    WHERE id = ANY(\(ids)::text[]) AND status = 'claimed' AND worker = \(address) RETURNING id
                    """, logger: logger)
                var kept = Set<String>()
                for try await id in rows.decode(String.self) { kept.insert(id) }
                return kept
            }
        } catch {
            logger.error("cluster leftovers not reconciled; peers settle them", metadata: [
                "error": "\(ClusterError.describing(error, "reconciling leftovers", settings: database.settings))",
            ])
        }
        var elsewhere: [String: String] = [:]
        for record in leftovers where !kept.contains(record.id) {
            elsewhere[record.id] = "lost: this worker stopped while it ran; the cluster settles the task (not run again here)"
        }
        guard !elsewhere.isEmpty else { return }
        await runner.settleElsewhere(elsewhere)
        logger.notice("cluster leftovers not run again here", metadata: ["tasks": "\(elsewhere.keys.sorted().joined(separator: ","))"])
    }

    /// Settles the tasks of members that stopped answering (and of tasks nobody claimed in
    /// time), once this agent has itself been connected for `dead_after`: right after an
    /// outage every heartbeat is old. Exactly once per task whichever agents do it.
    private func settleDeadMembers() async {
        guard lease.settlesDeadMembers() else { return }
        do {
            for job in try await admission.jobsWithDeadTasks() {
                let settled = try await admission.settleDead(job: job)
                if !settled.isEmpty {
                    logger.notice("cluster tasks of a dead or silent worker settled", metadata: [
                        "job": "\(job)", "tasks": "\(settled.joined(separator: ","))",
                    ])
                }
            }
        } catch {
            if Task.isCancelled { return }
            logger.warning("settling dead workers' tasks failed", metadata: [
                "error": "\(ClusterError.describing(error, "settle", settings: database.settings))",
            ])
        }
    }

    /// Fencing: while the lease is expired, this worker's tasks are stopped (recorded 503 with
    /// ``StopReason/leaseLostMessage``; the cluster retries them per `recover` when the result
    /// arrives), so they never run beside a peer's retry.
    private func fenceLoop() async {
        var fenced = false
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            guard !lease.isValid() else {
                if fenced { logger.notice("cluster lease renewed; taking tasks again") }
                fenced = false
                continue
            }
            let stopped = await runner.stopAll(because: .leaseLost)
            if stopped > 0 || !fenced {
                logger.error("cluster lease expired: the database did not answer; this worker's tasks are stopped", metadata: [
                    "stopped": "\(stopped)",
                ])
            }
            fenced = true
        }
    }

    /// The cluster's task table stays bounded: finished tasks older than the retention go.
    func prune() async {
        do {
            try await Self.prune(database: database, retentionDays: retentionDays, logger: logger)
        } catch {
            logger.warning("cluster task pruning failed", metadata: ["error": "\(ClusterError.describing(error, "prune", settings: database.settings))"])
        }
    }

    /// Deletes up to ``pruneBatch`` finished tasks that ended more than `retentionDays` ago,
    /// oldest first, stale results as old, and members without a heartbeat for a day; returns
    /// how many tasks.
    @discardableResult
    static func prune(database: ClusterDatabase, retentionDays: Int, logger: Logger) async throws -> Int {
        let cutoff = Date().addingTimeInterval(-Double(retentionDays) * 86_400).epochMilliseconds
        // Members silent for a day left for good (a host replaced, an address changed); stale
        // results are kept as long as tasks.
        try await database.client.query("DELETE FROM qagent_member WHERE heartbeat_at < now() - interval '1 day'", logger: logger)
        try await database.client.query(
            "DELETE FROM qagent_stale_result WHERE recorded_at < now() - make_interval(secs => \(retentionDays * 86_400))", logger: logger)
        let rows = try await database.client.query("""
            WITH gone AS (
                DELETE FROM qagent_task WHERE id IN (
                    SELECT id FROM qagent_task WHERE status = 'finished' AND end_time < \(cutoff) ORDER BY end_time LIMIT \(pruneBatch))
                RETURNING 1
            )
            SELECT count(*) FROM gone
            """, logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
