import Foundation
import Logging
import NIOSSL
import TOMLKit

/// Re-reads `agent.conf` on SIGHUP, `qagent reload` and `POST /api2/agent/reload.do`, and
/// applies what can change without a restart: the jobs (added, changed, removed — see
/// ``TaskRunner/reconfigure(_:states:)``) and their cron plans. Keys outside `[[job]]`
/// (`listen`, `data_dir`, tokens, `[report]`, ...) are reported and kept until a restart.
/// TLS files are read again (rotated certificates): the listener's for new connections,
/// and the upstream clients' for their next exchange; their paths are kept.
/// In cluster mode the agent registers its new jobs (their definitions become the
/// cluster's, as at a start) and its firer plans their crons.
/// A file that does not load, or names a Swift handler this binary lacks, changes nothing.
/// Reloads run one at a time.
public actor ConfigReloader {
    /// What a reload did.
    public struct Outcome: Sendable, Equatable {
        public var jobs: TaskRunner.Reconfiguration
        /// Keys whose new values need a restart (`[agent] listen`, `[report] url`, ...): kept.
        public var notApplied: [String]
    }

    /// Why a reload changed nothing.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// `config_invalid` or `no_config_file`.
        public var reason: String
        public var description: String
    }

    private let path: String?
    private let handlers: HandlerRegistry
    private let instance: String
    private let runner: TaskRunner
    private let scheduler: CronScheduler?
    private let store: AgentStore
    /// Cluster mode: the membership registers the new jobs, the firer plans their crons.
    private let cluster: (membership: ClusterMembership, firer: ClusterFirer)?
    /// The listener's TLS context, re-read on every reload; `nil` without TLS.
    private let listenerTLS: ListenerTLS?
    private let logger: Logger
    /// The text the agent started from: keys that need a restart are compared with it.
    private let currentText: String?

    init(
        path: String?, handlers: HandlerRegistry, instance: String, runner: TaskRunner, scheduler: CronScheduler?, store: AgentStore,
        cluster: (membership: ClusterMembership, firer: ClusterFirer)?, listenerTLS: ListenerTLS? = nil, logger: Logger
    ) {
        self.listenerTLS = listenerTLS
        self.path = path
        self.handlers = handlers
        self.instance = instance
        self.runner = runner
        self.scheduler = scheduler
        self.store = store
        self.cluster = cluster
        self.logger = logger
        currentText = path.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }

    /// Reloads, logs what happened, and returns it.
    public func reload(trigger: String) async -> Result<Outcome, Failure> {
        let result = await apply()
        switch result {
        case .success(let outcome):
            logger.notice("configuration reloaded", metadata: [
                "trigger": "\(trigger)", "added": "\(outcome.jobs.added)", "changed": "\(outcome.jobs.changed)",
                "removed": "\(outcome.jobs.removed)", "not_applied": "\(outcome.notApplied)",
            ])
        case .failure(let failure):
            logger.error("configuration reload failed; nothing changed", metadata: ["trigger": "\(trigger)", "error": "\(failure.description)"])
        }
        return result
    }

    private func apply() async -> Result<Outcome, Failure> {
        guard let path else {
            return .failure(Failure(reason: "no_config_file", description: "this agent was not started from a configuration file"))
        }
        let text: String
        let config: AgentConfig
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
            config = try ConfigLoader.load(path: path)
        } catch {
            return .failure(Failure(reason: "config_invalid", description: "\(error)"))
        }
        let jobs: [(JobConfig, TaskExecutor)]
        let states: [String: JobStateRecord]
        do {
            jobs = try Agent.executors(for: config, handlers: handlers, instance: instance)
            states = try store.jobStates()
        } catch {
            return .failure(Failure(reason: "config_invalid", description: "\(error)"))
        }
        // The certificate files are read before anything changes: files that no longer load
        // fail the reload as a whole.
        let context: NIOSSLContext?
        do {
            context = try listenerTLS?.reread()
        } catch {
            return .failure(Failure(reason: "config_invalid", description: "\(error)"))
        }
        let notApplied = currentText.map { Self.restartOnlyChanges(from: $0, to: text) } ?? []
        // The runner first: a task the cluster assigns for a new job is then taken, and one
        // for a removed job handed back (to another worker), never half-known here.
        let changes = await runner.reconfigure(jobs, states: states)
        await scheduler?.replaceJobs(config.jobs)
        if let cluster {
            cluster.firer.replaceJobs(config.jobs)
            _ = await cluster.membership.jobsChanged()
        }
        if let listenerTLS, let context { listenerTLS.install(context) }
        HTTPTransport.rereadCertificates()
        // `currentText` stays: the keys outside [[job]] still run with their start-up values,
        // so the next reload reports them again until a restart.
        return .success(Outcome(jobs: changes, notApplied: notApplied))
    }

    /// The keys outside `[[job]]` whose value differs between the two texts, as
    /// `table.key` (`agent.listen`, `report.url`, `cluster`): they need a restart.
    static func restartOnlyChanges(from old: String, to new: String) -> [String] {
        guard let old = try? TOMLDocument(parsing: old), let new = try? TOMLDocument(parsing: new) else { return [] }
        defer {
            old.free()
            new.free()
        }
        let (before, after) = (old.root, new.root)
        func keys(_ table: TOMLTable) -> [String] { TOMLDocument.keys(of: table) }
        /// A value as TOML text; "" when absent.
        func text(_ value: (any TOMLValueConvertible)?) -> String { value.map { "\($0)" } ?? "" }
        var changed: [String] = []
        for name in Set(keys(before)).union(keys(after)).sorted() where name != "job" {
            guard let left = before[name]?.table, let right = after[name]?.table else {
                if text(before[name]) != text(after[name]) { changed.append(name) }
                continue
            }
            for key in Set(keys(left)).union(keys(right)).sorted() where text(left[key]) != text(right[key]) {
                changed.append("\(name).\(key)")
            }
        }
        return changed
    }
}
