import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

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
    /// Advertised IP and bound port.
    public let identity: AgentIdentity
    let logger: Logger

    /// Opens the store under `data_dir` and registers every job of `config`.
    ///
    /// Throws ``ConfigError`` when a job has no `command` and no Swift handler of its name is
    /// in `handlers`.
    public init(config: AgentConfig, handlers: HandlerRegistry = HandlerRegistry(), logger: Logger = Logger(label: "qagent")) throws {
        var jobs: [(JobConfig, TaskExecutor)] = []
        let instance = UUID().uuidString
        for job in config.jobs {
            if let argv = job.command {
                let spec = CommandSpec(argv: argv, workingDirectory: job.workingDirectory, environment: job.environment, user: job.user)
                jobs.append((job, .command(CommandRunner(command: spec, killGrace: .seconds(config.agent.killGrace), agentInstance: instance))))
            } else if let handler = handlers.handler(named: job.name) {
                jobs.append((job, .swift(handler)))
            } else {
                throw ConfigError("[[job]] \"\(job.name)\": no command, and no Swift handler named \"\(job.name)\" is compiled into this binary")
            }
        }
        self.config = config
        self.logger = logger
        identity = AgentIdentity.resolve(settings: config.agent)
        do {
            store = try AgentStore(dataDirectory: config.agent.dataDir)
        } catch {
            throw ConfigError("cannot open the store in data_dir \"\(config.agent.dataDir)\": \(error)")
        }
        runner = try TaskRunner(
            jobs: jobs, states: try store.jobStates(), store: store, settings: config.agent,
            idGenerator: TaskIDGenerator(ip: identity.ipText, timeZone: config.agent.timeZone), logger: logger)
        scheduler = config.schedulerURL == nil
            ? CronScheduler(jobs: config.jobs, runner: runner, store: store, timeZone: config.agent.timeZone, logger: logger)
            : nil
    }

    /// The HTTP interface's responder (used by ``makeApplication(onReady:)`` and in-process tests).
    func makeResponder() -> AgentHTTPResponder {
        AgentHTTPResponder(
            api: SeedAPI(runner: runner, scheduler: scheduler, store: store, identity: identity, settings: config.agent),
            tokens: config.agent.tokens,
            maxBodyBytes: config.agent.maxRequestBytes)
    }

    /// The Hummingbird application bound to `listen`; `onReady` gets the bound port.
    public func makeApplication(onReady: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let identity = self.identity
        return Application(
            responder: makeResponder(),
            configuration: .init(address: .hostname(config.agent.listen.host, port: config.agent.listen.port), serverName: "qagent"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? identity.port
                identity.setPort(port)
                await onReady(port)
            },
            logger: logger)
    }

    /// Runs until SIGTERM/SIGINT: the runner, the cron scheduler (standalone only) and the
    /// HTTP interface as one service group, shut down in reverse order.
    /// On the signal the HTTP interface stops, running tasks get up to `shutdown_grace`
    /// seconds, then are cancelled (their process groups stopped).
    public func run(onReady: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [
                .init(service: runner),
                .init(service: TaskPruner(store: store, dataDirectory: config.agent.dataDir, retentionDays: config.agent.retentionDays, logger: logger)),
            ]
                + (scheduler.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                + [.init(service: makeApplication(onReady: onReady))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(config.agent.shutdownGrace)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }
}
