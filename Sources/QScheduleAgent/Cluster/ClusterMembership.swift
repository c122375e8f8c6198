import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// This agent's row in the cluster (DESIGN §10, membership): registered once the HTTP
/// interface listens (its address includes the bound port), heartbeated every
/// `heartbeat_interval` on the database's clock (`now()`, never this host's), removed on a
/// clean shutdown. A heartbeat that finds no row of this process (a peer removed it, or
/// another process took the address) registers again.
public final class ClusterMembership: Service, Sendable {
    private let database: ClusterDatabase
    private let identity: AgentIdentity
    private let runner: TaskRunner
    private let config: AgentConfig
    /// This process: a restarted agent on the same address is another instance.
    private let instance: String
    private let logger: Logger
    private let listening = StartGate()
    /// Who serves which job, refreshed after every heartbeat (for the firer's rendezvous order).
    let view: ClusterView
    /// Called once, after the first registration (the firer and the worker start then).
    private let onRegistered: @Sendable () -> Void
    /// Renewed by every successful heartbeat; read by the worker (fencing, settling the dead).
    let lease: ClusterLease
    /// Set by a reload until this agent's changed jobs are registered.
    private let republish = Mutex(false)

    init(
        database: ClusterDatabase, identity: AgentIdentity, runner: TaskRunner, config: AgentConfig, instance: String, logger: Logger,
        view: ClusterView = ClusterView(), lease: ClusterLease, onRegistered: @escaping @Sendable () -> Void = {}
    ) {
        self.lease = lease
        self.onRegistered = onRegistered
        self.view = view
        self.database = database
        self.identity = identity
        self.runner = runner
        self.config = config
        self.instance = instance
        self.logger = logger
    }

    /// Called once the HTTP interface listens: the address is final, registration may begin.
    func didStartListening() {
        listening.open()
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await listening.wait()
            var registered = false
            var everRegistered = false
            var failures = 0
            let interval = config.cluster?.heartbeatInterval ?? 3
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                let sentAt = ContinuousClock.now
                do {
                    // Bounded: a database that accepts but never answers must not hold the
                    // loop (the lease runs out meanwhile) nor a shutdown.
                    let wasRegistered = registered
                    registered = try await ClusterDatabase.withTimeout(max(2, interval), what: "heartbeat") {
                        if wasRegistered, !self.republish.withLock({ $0 }), try await self.heartbeat() { return true }
                        self.republish.withLock { $0 = false }
                        do {
                            try await self.register()
                        } catch {
                            self.republish.withLock { $0 = true }
                            throw error
                        }
                        return true
                    }
                    lease.renewed(sentAt: sentAt)
                    if !everRegistered { onRegistered() }
                    everRegistered = true
                    try await ClusterDatabase.withTimeout(max(2, interval), what: "member view") { try await self.refreshView() }
                    if failures > 0 { logger.notice("cluster database reachable again", metadata: ["failures": "\(failures)"]) }
                    failures = 0
                } catch {
                    failures += 1
                    lease.failed()
                    if failures == 1 || failures.isMultiple(of: 20) {
                        logger.error("cluster heartbeat failed", metadata: [
                            "error": "\(ClusterError.describing(error, "heartbeat", settings: database.settings))", "failures": "\(failures)",
                        ])
                    }
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(interval)) }
            }
        } onGracefulShutdown: {
            // Stop waiting for the listener; the loop ends and deregistration follows below.
            self.listening.abandon()
        }
        await deregister()
    }

    /// The member row and its jobs, replaced in one transaction. The cluster's job rows take
    /// this agent's definitions (the most recently started agent's definition is the
    /// cluster's); a job new to the cluster starts enabled as this agent has it.
    func register() async throws {
        let address = identity.address
        let jobs = await runner.jobConfigs
        var names: [String] = []
        var definitions: [String] = []
        var enabled: [Bool] = []
        for job in jobs {
            names.append(job.name)
            definitions.append(Self.definition(of: job).jsonText)
            enabled.append(await runner.isEnabled(job.name) ?? true)
        }
        let draining = await runner.isDraining
        let (instance, hostname, version) = (self.instance, ProcessInfo.processInfo.hostName, AgentVersion.current)
        let (appName, appID) = (config.agent.appName, config.agent.appID)
        try await database.client.withTransaction(logger: logger) { connection in
            try await connection.query("""
                INSERT INTO qagent_member (address, instance, hostname, version, app_name, app_id, started_at, heartbeat_at, draining)
                VALUES (\(address), \(instance), \(hostname), \(version), \(appName), \(appID), now(), now(), \(draining))
                ON CONFLICT (address) DO UPDATE SET instance = excluded.instance, hostname = excluded.hostname,
                    version = excluded.version, app_name = excluded.app_name, app_id = excluded.app_id,
                    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, draining = excluded.draining
                """, logger: logger)
            try await connection.query("DELETE FROM qagent_member_job WHERE address = \(address)", logger: logger)
            try await connection.query("""
                INSERT INTO qagent_member_job (address, job, definition)
                SELECT \(address), job, definition::jsonb FROM unnest(\(names)::text[], \(definitions)::text[]) AS t(job, definition)
                """, logger: logger)
            // Sorted, so that agents registering at once lock job rows in the same order.
            try await connection.query("""
                INSERT INTO qagent_job (job, enabled, definition, app_name, app_id)
                SELECT job, enabled, definition::jsonb, \(appName), \(appID)
                FROM unnest(\(names)::text[], \(definitions)::text[], \(enabled)::boolean[]) AS t(job, definition, enabled) ORDER BY job
                ON CONFLICT (job) DO UPDATE SET definition = excluded.definition, app_name = excluded.app_name, app_id = excluded.app_id
                """, logger: logger)
        }
        logger.notice("cluster member registered", metadata: ["address": "\(address)", "jobs": "\(names.count)"])
    }

    /// A reload changed this agent's jobs: registers again at once (its jobs and their
    /// definitions, which become the cluster's); when the database does not answer, the next
    /// successful heartbeat does. Returns whether it went through now.
    func jobsChanged() async -> Bool {
        republish.withLock { $0 = true }
        do {
            try await ClusterDatabase.withTimeout(5, what: "registering the reloaded jobs") { try await self.register() }
            republish.withLock { $0 = false }
            try? await refreshView()
            return true
        } catch {
            logger.warning("the reloaded jobs are not registered in the cluster yet; the next heartbeat retries", metadata: [
                "error": "\(ClusterError.describing(error, "reload", settings: database.settings))",
            ])
            return false
        }
    }

    /// Publishes this agent's drain state at once (the heartbeat would within an interval).
    func publishDraining() async throws {
        let (address, instance, draining) = (identity.address, self.instance, await runner.isDraining)
        try await database.client.query(
            "UPDATE qagent_member SET draining = \(draining) WHERE address = \(address) AND instance = \(instance)", logger: logger)
    }

    /// Renews the heartbeat (and the drain state); `false` when this process has no row.
    func heartbeat() async throws -> Bool {
        let (address, instance, draining) = (identity.address, self.instance, await runner.isDraining)
        let rows = try await database.client.query("""
            UPDATE qagent_member SET heartbeat_at = now(), draining = \(draining)
            WHERE address = \(address) AND instance = \(instance) RETURNING address
            """, logger: logger)
        var found = false
        for try await _ in rows { found = true }
        return found
    }

    /// Reads which online members serve this agent's jobs into ``view``.
    func refreshView() async throws {
        let deadAfter = database.settings.deadAfter
        // Only this agent's jobs: what it reads grows with its jobs' servers, not with the fleet.
        let mine = await runner.jobConfigs.map(\.name)
        let rows = try await database.client.query("""
            SELECT j.job, m.address FROM qagent_member_job j JOIN qagent_member m ON m.address = j.address
            WHERE j.job = ANY(\(mine)::text[]) AND m.heartbeat_at > now() - make_interval(secs => \(deadAfter))
            """, logger: logger)
        var servers: [String: [String]] = [:]
        for try await (job, address) in rows.decode((String, String).self) { servers[job, default: []].append(address) }
        view.update(servers)
    }

    /// Removes this process's row (and its jobs); a failure is logged: the row then ages out.
    func deregister() async {
        let (address, instance) = (identity.address, self.instance)
        do {
            try await ClusterDatabase.withTimeout(5, what: "deregistering") { [database, logger] in
                try await database.client.query("DELETE FROM qagent_member WHERE address = \(address) AND instance = \(instance)", logger: logger)
            }
            logger.notice("cluster member deregistered", metadata: ["address": "\(address)"])
        } catch {
            logger.warning("cluster member not deregistered; it ages out after dead_after", metadata: [
                "error": "\(ClusterError.describing(error, "deregistering", settings: database.settings))",
            ])
        }
    }

    /// What the cluster compares between hosts to tell whether a job is defined the same way.
    static func definition(of job: JobConfig) -> JSONValue {
        var fields: [String: JSONValue] = [
            "desc": .string(job.desc),
            "recover": .string(job.recover.rawValue),
            "maxAttempts": .int(Int64(job.maxAttempts)),
            "misfire": .string(job.misfire.rawValue),
            "timeout": .int(Int64(job.timeout)),
            "overlap": .string(job.overlap.rawValue),
            "maxConcurrency": .int(Int64(job.maxConcurrency)),
            "maxQueued": .int(Int64(job.maxQueued)),
            "loadBalance": .string(job.loadBalance),
            "consecutiveFailTimesAlertThreshold": .int(Int64(job.consecutiveFailTimesAlertThreshold)),
            "retries": .int(Int64(job.retries)),
            "retryBackoff": .int(Int64(job.retryBackoff)),
        ]
        fields["cron"] = job.cron.map { .string($0.description) } ?? .null
        fields["command"] = job.command.map { .array($0.map(JSONValue.string)) } ?? .null
        return .object(fields)
    }
}
