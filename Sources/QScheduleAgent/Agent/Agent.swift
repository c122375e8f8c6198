import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// One qagent process: store, task runner and HTTP interface, wired from an ``AgentConfig``.
///
/// ```swift
/// let agent = try Agent(config: config, handlers: registry)
/// try await agent.run()          // until SIGTERM/SIGINT
/// ```
public final class Agent: Sendable {
    /// The validated configuration this agent runs with.
    public let config: AgentConfig
    /// The journal and job state.
    public let store: AgentStore
    /// Admission, queues and execution.
    public let runner: TaskRunner
    /// Fires cron jobs locally; `nil` when a central scheduler (`[scheduler] url`) drives this host.
    public let scheduler: CronScheduler?
    /// Delivers the report outbox and heartbeats; `nil` without `[report] url`.
    public let reporter: Reporter?
    /// Tells the central scheduler (`[scheduler] url`) about drains; `nil` when there is none.
    public let central: CentralWorkers?
    /// Advertised IP and bound port.
    public let identity: AgentIdentity
    /// The cluster's database (`[cluster]`); `nil` standalone.
    public let clusterDatabase: ClusterDatabase?
    /// This agent's membership row in the cluster; `nil` standalone.
    public let membership: ClusterMembership?
    /// Fires the cluster's cron jobs (exactly once per scheduled time); `nil` standalone.
    let clusterFirer: ClusterFirer?
    /// Runs the cluster tasks assigned to this agent; `nil` standalone.
    let clusterWorker: ClusterWorker?
    /// Carries finished tasks' results into the cluster's database; `nil` standalone.
    let clusterResults: ClusterResultSink?
    /// Creates and admits cluster tasks; `nil` standalone.
    let clusterAdmission: ClusterAdmission?
    let logger: Logger
    /// Recorded by the runner, the journal, the HTTP interface and the firers; `GET /metrics`.
    public let metrics: AgentMetrics
    /// Applies a re-read `agent.conf` (SIGHUP, `qagent reload`, `POST /api2/agent/reload.do`).
    public let reloader: ConfigReloader
    private let lock: DataDirectoryLock
    /// Open connections of the HTTP interface against `max_connections`.
    let connectionLimiter: ConnectionLimiter
    /// HTTPS on the listener (`[agent] tls_cert`); `nil` = plain HTTP.
    public let listenerTLS: ListenerTLS?

    /// Opens the store under `data_dir` and registers every job of `config`.
    ///
    /// Throws ``ConfigError`` when a job has no `command` and no Swift handler of its name is
    /// in `handlers`.
    /// `configPath`: the file `config` was loaded from, re-read by a reload (without it,
    /// reloads are refused).
    public init(
        config: AgentConfig, handlers: HandlerRegistry = HandlerRegistry(), logger: Logger = Logger(label: "qagent"), configPath: String? = nil
    ) throws {
        let instance = UUID().uuidString
        let jobs = try Self.executors(for: config, handlers: handlers, instance: instance)
        self.config = config
        self.logger = logger
        let metrics = AgentMetrics()
        self.metrics = metrics
        connectionLimiter = ConnectionLimiter(limit: config.agent.maxConnections)
        listenerTLS = try config.agent.tls.map { try ListenerTLS(settings: $0) }
        identity = AgentIdentity.resolve(settings: config.agent)
        lock = try DataDirectoryLock(dataDirectory: config.agent.dataDir)
        do {
            store = try AgentStore(
                dataDirectory: config.agent.dataDir, durability: config.agent.journalDurability,
                reportAddress: config.report == nil ? nil : Self.addressProvider(identity), clusterResults: config.cluster != nil,
                committed: { metrics.journalCommitted(after: $0) },
                alerted: { jobs in
                    for job in jobs {
                        metrics.alertRaised(job: job)
                        logger.warning("job alert: consecutive failures reached alert_after_failures", metadata: ["job": "\(job)"])
                    }
                })
        } catch {
            throw ConfigError("cannot open the store in data_dir \"\(config.agent.dataDir)\": \(error)")
        }
        runner = try TaskRunner(
            jobs: jobs, states: try store.jobStates(), store: store, settings: config.agent, instance: instance,
            idGenerator: TaskIDGenerator(ip: identity.ipText, timeZone: config.agent.timeZone),
            outboxLimit: config.report?.outboxMax, metrics: metrics, logger: logger)
        let (store, runner, identity) = (self.store, self.runner, self.identity)
        reporter = config.report.map {
            Reporter(settings: $0, store: store, runner: runner, identity: identity, token: config.agent.tokens[0], logger: logger)
        }
        central = config.scheduler.map {
            CentralWorkers(settings: $0, store: store, identity: identity, token: config.agent.tokens[0], logger: logger)
        }
        // Cron fires locally only standalone: with a central scheduler it fires; in a cluster,
        // local fires would fire a job once per host (cluster-wide fires come with cluster mode).
        scheduler = config.schedulerURL == nil && config.cluster == nil
            ? CronScheduler(jobs: config.jobs, runner: runner, store: store, timeZone: config.agent.timeZone, metrics: metrics, logger: logger)
            : nil
        let clusterDatabase = config.cluster.map { ClusterDatabase(settings: $0, logger: logger) }
        self.clusterDatabase = clusterDatabase
        let admission = clusterDatabase.map { ClusterAdmission(database: $0, logger: logger) }
        clusterAdmission = admission
        let view = ClusterView()
        let lease = config.cluster.map { ClusterLease(settings: $0, killGrace: config.agent.killGrace) }
        let clusterWorker = admission.map {
            ClusterWorker(
                admission: $0, view: view, lease: lease!, identity: identity, runner: runner, store: store, retentionDays: config.agent.retentionDays,
                logger: logger)
        }
        self.clusterWorker = clusterWorker
        let clusterFirer = admission.map {
            ClusterFirer(
                admission: $0, view: view, identity: identity, jobs: config.jobs, timeZone: config.agent.timeZone, metrics: metrics, logger: logger)
        }
        self.clusterFirer = clusterFirer
        let journal = self.store
        clusterResults = admission.map { ClusterResultSink(admission: $0, store: journal, identity: identity, logger: logger) }
        membership = clusterDatabase.map {
            ClusterMembership(
                database: $0, identity: identity, runner: runner, config: config, instance: instance, logger: logger, view: view, lease: lease!
            ) {
                clusterWorker?.start()
                clusterFirer?.start()
            }
        }
        let membership = self.membership
        reloader = ConfigReloader(
            path: configPath, handlers: handlers, instance: instance, runner: runner, scheduler: scheduler, store: store,
            cluster: membership.flatMap { member in clusterFirer.map { (member, $0) } }, listenerTLS: listenerTLS, logger: logger)
    }

    /// How each job of `config` runs: its command, or the Swift handler of its name; throws
    /// ``ConfigError`` when a job has neither.
    static func executors(for config: AgentConfig, handlers: HandlerRegistry, instance: String) throws -> [(JobConfig, TaskExecutor)] {
        try config.jobs.map { job in
            if let argv = job.command {
                let spec = CommandSpec(argv: argv, workingDirectory: job.workingDirectory, environment: job.environment, user: job.user)
                return (job, .command(CommandRunner(command: spec, killGrace: .seconds(config.agent.killGrace), agentInstance: instance)))
            } else if let handler = handlers.handler(named: job.name) {
                return (job, .swift(handler))
            }
            throw ConfigError("[[job]] \"\(job.name)\": no command, and no Swift handler named \"\(job.name)\" is compiled into this binary")
        }
    }

    private static func addressProvider(_ identity: AgentIdentity) -> @Sendable () -> String {
        { identity.address }
    }

    /// The HTTP interface's responder (used by ``makeApplication(onReady:)`` and in-process tests).
    func makeResponder() -> AgentHTTPResponder {
        var api = SeedAPI(
            runner: runner, scheduler: scheduler, reporter: reporter, central: central, store: store, identity: identity,
            settings: config.agent, metrics: metrics, refusedTokens: RefusedTokenLog(logger: logger), reloader: reloader,
            cronMode: config.cluster != nil ? "cluster" : config.scheduler != nil ? "central" : "local")
        if let clusterAdmission, let membership {
            // Peers listen as this agent does; it shows them its own certificate (mutual TLS).
            let peerTLS = config.agent.tls.map {
                ClientTLSSettings(caFile: config.cluster?.peerCAFile, certificateFile: $0.certificateFile, keyFile: $0.keyFile)
            }
            api.cluster = ClusterSeedAPI(
                local: api, admission: clusterAdmission, membership: membership, identity: identity, peerTLS: peerTLS, logger: logger)
        }
        return AgentHTTPResponder(
            api: api, tokens: config.agent.tokens, maxBodyBytes: config.agent.maxRequestBytes, metricsRequireToken: config.agent.metricsToken)
    }

    /// The Hummingbird application bound to `listen`; `onReady` gets the bound port.
    public func makeApplication(onReady: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let identity = self.identity
        let settings = config.agent
        let limiter = connectionLimiter
        // Per connection, after HTTP decoding: the connection cap, the request read timeout,
        // and envelopes for what the parser refuses. Idle connections: Hummingbird's timeout.
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [
                ConnectionLimitHandler(limiter: limiter),
                RequestReadTimeoutHandler(timeout: .seconds(Int64(settings.readTimeout))),
                MalformedRequestHandler(),
            ],
            idleTimeout: .seconds(Int64(settings.idleTimeout)))
        // With TLS, the handshake comes first; each connection takes the context in force
        // when it is accepted (a reload rotates it).
        let tls = listenerTLS
        // An idle host answers /api/check on the event loop; in cluster mode the check is
        // the cluster's, so every request takes the responder.
        let (activity, metrics) = (runner.activity, self.metrics)
        let makeIdleCheck: @Sendable () -> IdleCheckHandler = {
            IdleCheckHandler(activity: activity, identity: identity, metrics: metrics)
        }
        let idleCheck = config.cluster == nil ? makeIdleCheck : nil
        let server = HTTPServerBuilder { responder in
            let http1 = HTTP1Channel(responder: responder, configuration: http)
            let channel: any ServerChildChannel = idleCheck.map { IdleCheckChannel(base: http1, makeHandler: $0) } ?? http1
            return tls.map { channel.behindTLS($0) } ?? channel
        }
        return Application(
            responder: makeResponder(),
            server: server,
            configuration: .init(address: .hostname(config.agent.listen.host, port: config.agent.listen.port), serverName: "qagent"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? identity.port
                identity.setPort(port)
                await onReady(port)
            },
            logger: logger)
    }

    /// Runs until SIGTERM/SIGINT (DESIGN §5). The first signal drains: intake stops
    /// (dispatches refused with `draining`, cron fires skipped) while the HTTP interface keeps
    /// answering; running tasks get up to `shutdown_grace` seconds; what still runs is then
    /// stopped and recorded per its job's `recover`; the services stop and `run` returns
    /// (exit 0). A second signal exits at once (status 128 + signal).
    public func run(onReady: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First, so that it stops last: the results of the tasks the shutdown waited for go out.
        if let clusterResults { services.append(.init(service: clusterResults)) }
        services.append(.init(service: runner))
        // After the runner: stopped before it, once the HTTP interface and the scheduler are down.
        if let reporter { services.append(.init(service: reporter)) }
        services += [
            .init(service: TaskPruner(store: store, dataDirectory: config.agent.dataDir, retentionDays: config.agent.retentionDays, logger: logger)),
        ]
        if let scheduler { services.append(.init(service: scheduler)) }
        if OrphanReaper.isNeeded { services.append(.init(service: OrphanReaper())) }
        if let membership { services.append(.init(service: membership)) }
        if let clusterWorker { services.append(.init(service: clusterWorker)) }
        if let clusterFirer { services.append(.init(service: clusterFirer)) }
        services.append(.init(service: makeApplication(onReady: { port in
            await onReady(port)
            self.membership?.didStartListening()
            await self.tellCentralBackIfDrained()
        })))
        // Signals are handled here, not by the service group: a drain must keep HTTP serving.
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        // Long enough for the reporter's final flush.
        configuration.maximumGracefulShutdownDuration = .seconds(30 + (config.report?.flushTimeout ?? 0))
        let group = ServiceGroup(configuration: configuration)
        // The cluster's client runs for the whole life of the agent, around the service group,
        // so that it outlives every service that uses it and the schema can be checked before
        // anything listens: a bad database is a start-up error (exit 2), never a half start.
        let clusterClient = Task { [clusterDatabase] in await clusterDatabase?.client.run() }
        defer { clusterClient.cancel() }
        if let clusterDatabase { try await Self.prepareCluster(clusterDatabase, logger: logger) }
        // Cluster tasks a previous process left: only those the cluster still gives this worker
        // run again here; the others were settled by peers meanwhile.
        if let clusterWorker { await clusterWorker.reconcileLeftovers() }
        // Settle what a previous process left before anything answers (or fires).
        await runner.recoverLeftovers()
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        // Unstructured on purpose: waiting for a second signal must not keep `run` from
        // returning once the services stopped; it is cancelled then.
        let signalWatcher = Task {
            var iterator = signals.makeAsyncIterator()
            guard let first = await iterator.next() else { return }
            self.logger.notice("signal received: draining", metadata: ["signal": "\(first)", "grace_s": "\(self.config.agent.shutdownGrace)"])
            Task { await self.shutDown(group) }
            if let second = await iterator.next(), !Task.isCancelled {
                self.logger.warning("second signal: exiting now", metadata: ["signal": "\(second)"])
                exit(128 + second.rawValue)
            }
        }
        defer { signalWatcher.cancel() }
        // SIGPIPE (a peer gone mid-write) must not kill the agent: ignored, silently (routine).
        signal(SIGPIPE, SIG_IGN)
        // SIGHUP reloads agent.conf (systemd's ExecReload); it never stops the agent.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let reloadWatcher = Task {
            for await _ in hangups { _ = await self.reloader.reload(trigger: "SIGHUP") }
        }
        defer { reloadWatcher.cancel() }
        do {
            try await group.run()
        } catch let error as IOError where error.description.hasPrefix("bind(") {
            throw ListenError(address: config.agent.listen, errno: error.errnoCode)
        }
    }

    /// Connects to the cluster's database and brings its schema up to date, within 20 s;
    /// throws ``ClusterError`` naming the cause (unreachable, authentication, newer schema).
    static func prepareCluster(_ database: ClusterDatabase, logger: Logger) async throws {
        do {
            try await ClusterDatabase.withTimeout(20, what: "connecting") {
                try await database.probe(logger: logger)
                try await ClusterSchema.migrate(database.client, logger: logger)
            }
        } catch {
            throw ClusterError.describing(error, "cluster start", settings: database.settings)
        }
    }

    /// Once listening: if a drain (of this or an earlier process) told the central scheduler
    /// this host is offline, tell it the host is back, since this process takes work.
    private func tellCentralBackIfDrained() async {
        guard let central, await central.toldOffline else { return }
        let runner = self.runner
        let logger = self.logger
        Task {
            let outcomes = await central.bringOnline(jobs: await runner.schedulableJobs)
            logger.notice("told the central scheduler this host takes work again", metadata: [
                "outcomes": "\(outcomes.map { "\($0.job)=\($0.outcome.rawValue)" }.joined(separator: " "))",
            ])
        }
    }

    /// Drain, wait up to `shutdown_grace` for running and queued tasks, stop the rest, then
    /// stop the services.
    func shutDown(_ group: ServiceGroup) async {
        await runner.beginShutdown()
        // Told while the tasks finish; bounded by the client's timeout.
        let runner = self.runner
        let telling = Task { [central] in
            guard let central else { return }
            _ = await central.takeOffline(jobs: await runner.schedulableJobs, undoOnLastWorker: false)
        }
        defer { telling.cancel() }
        let deadline = ContinuousClock.now.advanced(by: .seconds(config.agent.shutdownGrace))
        while await !runner.activeJobs().isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        if await !runner.activeJobs().isEmpty {
            logger.warning("shutdown grace over: stopping the remaining tasks")
            await runner.stopAllForShutdown()
        }
        await telling.value
        await group.triggerGracefulShutdown()
    }
}

/// The HTTP interface could not bind its `listen` address (in use, not an address of this
/// host, a privileged port).
public struct ListenError: Error, CustomStringConvertible {
    /// The address that could not be bound.
    public var address: ListenAddress
    /// The `errno` of the failed `bind`.
    public var errno: Int32

    public var description: String {
        let reason = String(cString: strerror(errno))
        return "cannot listen on \(address): \(reason.prefix(1).lowercased() + reason.dropFirst())"
    }
}
