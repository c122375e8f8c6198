import Foundation

/// The validated contents of `agent.conf` (DESIGN §8).
///
/// Built by ``ConfigLoader``; every value here has already been checked, so the rest of the
/// agent never re-validates configuration.
public struct AgentConfig: Sendable {
    /// `[agent]`: identity, listening address, storage and limits of this host.
    public var agent: AgentSettings
    /// `[report]`: where finished tasks and heartbeats are POSTed (optional).
    public var report: ReportSettings?
    /// `[scheduler]`: a central server speaking the seed interface (optional).
    public var scheduler: SchedulerSettings?
    /// `[cluster]`: the fleet's agents share one PostgreSQL database (optional; excludes `[scheduler]`).
    public var cluster: ClusterSettings?
    /// `[[job]]`: the jobs registered on this host, in file order.
    public var jobs: [JobConfig]
    /// What loads but deserves an operator's eye (`file:line: ...`): logged at start and
    /// printed by `qagent config check` (a secret file others can read, ...).
    public var warnings: [String] = []

    /// `[report] url`, when reporting is configured.
    public var reportURL: URL? { report?.url }
    /// `[scheduler] url`, when a central scheduler drives this host.
    public var schedulerURL: URL? { scheduler?.url }

    /// Creates a configuration from already-validated parts (tests and embedders).
    public init(agent: AgentSettings, report: ReportSettings? = nil, scheduler: SchedulerSettings? = nil, cluster: ClusterSettings? = nil, jobs: [JobConfig]) {
        self.agent = agent
        self.report = report
        self.scheduler = scheduler
        self.cluster = cluster
        self.jobs = jobs
    }
}

/// The `[report]` table: the durable outbox of finished tasks and the heartbeat (DESIGN §7).
public struct ReportSettings: Sendable {
    /// Where reports and heartbeats are POSTed.
    public var url: URL
    /// Reports waiting at most; when the outbox (plus the reports that running and queued
    /// tasks will add) reaches it, dispatches are refused with `outbox_full`.
    public var outboxMax: Int = 10_000
    /// Reports per POST at most.
    public var batchMax: Int = 100
    /// Bytes of reports per POST at most (a single larger report still goes, alone).
    public var batchMaxBytes: Int = 256 << 10
    /// First wait after a failed delivery, in milliseconds; doubles per failure.
    public var backoffMinMs: Int = 1_000
    /// Longest wait between delivery attempts, in milliseconds (also caps `Retry-After`).
    public var backoffMaxMs: Int = 60_000
    /// Seconds between heartbeats; 0 = none.
    public var heartbeatInterval: Int = 30
    /// Seconds for connecting and for each wait on the receiver's answer.
    public var timeout: Int = 10
    /// Seconds a shutdown spends delivering what is left in the outbox.
    public var flushTimeout: Int = 5
    /// For an `https://` url: `ca_file`, `cert_file`, `key_file`.
    public var tls = ClientTLSSettings()

    public init(url: URL) {
        self.url = url
    }
}

/// The `[scheduler]` table: a central server speaking the seed interface.
public struct SchedulerSettings: Sendable {
    /// The server's base URL; `/api2/workers/state.do` etc. are appended.
    public var url: URL
    /// Seconds for connecting and for each wait on the server's answer.
    public var timeout: Int = 10
    /// For an `https://` url: `ca_file`, `cert_file`, `key_file`.
    public var tls = ClientTLSSettings()

    public init(url: URL) {
        self.url = url
    }
}

/// The `[agent]` table.
public struct AgentSettings: Sendable {
    public var appName: String = "qagent"
    public var appID: Int = 0
    /// The address the HTTP interface binds (`listen = "ip:port"`). Loopback by default: an
    /// agent is reachable from other hosts only when `listen` says so.
    public var listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 20010)
    /// The IP this agent reports as its own (`advertise_ip`); detected when `nil`.
    public var advertiseIP: String?
    /// Folder holding the SQLite store and task logs.
    public var dataDir: String = "./data"
    /// Accepted `Q-Server-Token` values; more than one allows rotation. Never empty once loaded,
    /// each at least ``minimumTokenLength`` characters.
    public var tokens: [String] = []
    /// The shortest token the agent starts with.
    public static let minimumTokenLength = 16
    /// IANA time zone used for task ids and (later) cron; `nil` = the system's.
    public var timeZone: TimeZone = .current
    /// Seconds a shutdown waits for running tasks before killing them.
    public var shutdownGrace: Int = 30
    /// Tasks running at once on this host.
    public var maxRunning: Int = 64
    /// Tasks waiting on this host.
    public var maxQueued: Int = 1000
    /// Largest request body the HTTP interface accepts, in bytes.
    public var maxRequestBytes: Int = 1 << 20
    /// Seconds a connection may sit without a request in progress (idle keep-alive, or a
    /// request head that has not fully arrived) before it is closed.
    public var idleTimeout: Int = 60
    /// Seconds a request's body may take to arrive once its head is in; then `408` and close.
    public var readTimeout: Int = 30
    /// Connections the HTTP interface holds open at once; more are closed on arrival.
    public var maxConnections: Int = 512
    /// Seconds between SIGTERM and SIGKILL when a task's process group is stopped; also how
    /// long a Swift handler gets to honour cancellation.
    public var killGrace: Int = 5
    /// Largest task log kept, in bytes; output beyond it is discarded (marked in the log).
    public var maxLogBytes: Int = 10 << 20
    /// Days finished tasks and their logs are kept.
    public var retentionDays: Int = 7
    /// How `qagent run` writes its log: `text` or `json` (one object per line); `--log-format` overrides it.
    public var logFormat: LogFormat = .text
    /// Whether `GET /metrics` asks for `Q-Server-Token` (off by default, like node_exporter).
    public var metricsToken = false
    /// A secret file (`token_file`, `password_file`, `tls_key`, `key_file`) readable by group
    /// or others stops the start instead of being a warning.
    public var strictPermissions = false
    /// HTTPS (and, with a client CA, mutual TLS) on the listener; `nil` = plain HTTP.
    public var tls: ListenerTLSSettings?
    /// Threads for Swift handlers' blocking work (`TaskContext.blocking`, `register(_:blocking:)`),
    /// apart from the cooperative pool that serves requests and fires crons.
    public var blockingThreads: Int = 8
    /// Not a config key: `.unsafeNoSync` exists only for the durability benchmark's baseline.
    public var journalDurability: AgentStore.Durability = .full

    /// Creates settings with the documented defaults.
    public init() {}
}

/// A `listen` value: an IP literal (or host name) and a TCP port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `ip:port`, `[v6]:port`; returns `nil` when malformed.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What happens to a task left unfinished by a previous agent process (DESIGN §4).
public enum RecoverPolicy: String, Sendable, CaseIterable {
    case retry
    case discard
}

/// What a start after downtime does about cron fires missed while the agent was down.
public enum MisfirePolicy: String, Sendable, CaseIterable {
    /// Missed fires are skipped (counted); the job next fires at its next time.
    case skip
    /// One fire happens at start, however many were missed.
    case fireOnce = "fire_once"
}

/// What a new task of a job does while another task of the same job is active (DESIGN §3).
public enum OverlapPolicy: String, Sendable, CaseIterable {
    /// Up to `max_concurrency` run at once; more wait in the job's queue.
    case concurrent
    /// One runs at a time; up to `max_queued` wait.
    case serial
    /// Refused while one runs.
    case discard
    /// The running one is cancelled and the new one starts.
    case cover
}

/// How the cluster picks the worker of a job's task among its online, non-draining workers
/// with `canSchedule` (the seed's `loadBalance`; standalone, the host is the only worker).
public enum LoadBalance: String, Sendable, CaseIterable {
    case random
    /// In turn, in address order, with one counter per job for the whole cluster.
    case roundRobin = "round_robin"
}

/// One `[[job]]` entry.
///
/// A value with shared storage (copy-on-write): the loaded config, the runner and the cron
/// scheduler each hold the job, and with 10,000 jobs three copies of its fields would be
/// megabytes; copies share one until one is changed.
public struct JobConfig: Sendable, Equatable {
    /// The fields, held once however often the value is copied.
    struct Fields: Equatable {
        var name: String
        var desc: String = ""
        var cron: CronExpression?
        var command: [String]?
        var workingDirectory: String?
        var environment: [String: String] = [:]
        var user: UserAccount?
        var recover: RecoverPolicy = .retry
        var maxAttempts: Int = 3
        var misfire: MisfirePolicy = .skip
        var timeout: Int = 0
        var retries: Int = 0
        var retryBackoff: Int = 10
        var overlap: OverlapPolicy = .serial
        var maxConcurrency: Int = 1
        var maxQueued: Int = 100
        var enabled: Bool = true
        var loadBalance: String = "random"
        var consecutiveFailTimesAlertThreshold: Int = 1
    }

    private final class Storage: @unchecked Sendable {
        // Mutated only through `mutableFields`, when this storage is not shared.
        var fields: Fields

        init(_ fields: Fields) {
            self.fields = fields
        }
    }

    private var storage: Storage

    /// The fields for a change: copied first when another value shares them.
    private var mutableFields: Fields {
        _read { yield storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    public var name: String {
        get { storage.fields.name }
        set { mutableFields.name = newValue }
    }

    public var desc: String {
        get { storage.fields.desc }
        set { mutableFields.desc = newValue }
    }

    /// The Quartz cron expression; `nil` when the job is only dispatched.
    public var cron: CronExpression? {
        get { storage.fields.cron }
        set { mutableFields.cron = newValue }
    }

    /// argv of a command handler; `nil` means a Swift handler registered under `name`.
    public var command: [String]? {
        get { storage.fields.command }
        set { mutableFields.command = newValue }
    }

    /// Working directory of the command (`cwd`); `nil` = the agent's.
    public var workingDirectory: String? {
        get { storage.fields.workingDirectory }
        set { mutableFields.workingDirectory = newValue }
    }

    /// Extra environment of the command (`env`).
    public var environment: [String: String] {
        get { storage.fields.environment }
        set { mutableFields.environment = newValue }
    }

    /// The account the command runs as (`user`); the agent must run as root.
    public var user: UserAccount? {
        get { storage.fields.user }
        set { mutableFields.user = newValue }
    }

    public var recover: RecoverPolicy {
        get { storage.fields.recover }
        set { mutableFields.recover = newValue }
    }

    /// Runs of one task id at most, counting the first, under `recover = "retry"`.
    public var maxAttempts: Int {
        get { storage.fields.maxAttempts }
        set { mutableFields.maxAttempts = newValue }
    }

    /// What happens to fires missed while the agent was down.
    public var misfire: MisfirePolicy {
        get { storage.fields.misfire }
        set { mutableFields.misfire = newValue }
    }

    /// Seconds; 0 = no timeout.
    public var timeout: Int {
        get { storage.fields.timeout }
        set { mutableFields.timeout = newValue }
    }

    /// Runs again after a failure (500) or a timeout (504), as attempt + 1; a kill (499) never.
    public var retries: Int {
        get { storage.fields.retries }
        set { mutableFields.retries = newValue }
    }

    /// Seconds before the first retry; doubling for each next one, capped at ``retryBackoffCap``.
    public var retryBackoff: Int {
        get { storage.fields.retryBackoff }
        set { mutableFields.retryBackoff = newValue }
    }

    public var overlap: OverlapPolicy {
        get { storage.fields.overlap }
        set { mutableFields.overlap = newValue }
    }

    public var maxConcurrency: Int {
        get { storage.fields.maxConcurrency }
        set { mutableFields.maxConcurrency = newValue }
    }

    public var maxQueued: Int {
        get { storage.fields.maxQueued }
        set { mutableFields.maxQueued = newValue }
    }

    /// Initial enabled state; the stored state wins once the job has been switched on or off.
    public var enabled: Bool {
        get { storage.fields.enabled }
        set { mutableFields.enabled = newValue }
    }

    public var loadBalance: String {
        get { storage.fields.loadBalance }
        set { mutableFields.loadBalance = newValue }
    }

    /// `alert_after_failures`: an alert event when this many runs in a row failed (500, 504,
    /// 503); 0 = never. The seed's `consecutiveFailTimesAlertThreshold`.
    public var consecutiveFailTimesAlertThreshold: Int {
        get { storage.fields.consecutiveFailTimesAlertThreshold }
        set { mutableFields.consecutiveFailTimesAlertThreshold = newValue }
    }

    /// The longest wait between two retries (seconds).
    public static let retryBackoffCap = 3_600

    /// The wait before retry number `retry` (1 = the first).
    public func backoff(beforeRetry retry: Int) -> Duration {
        let seconds = min(Double(retryBackoff) * pow(2, Double(max(0, retry - 1))), Double(Self.retryBackoffCap))
        return .milliseconds(Int64(seconds * 1000))
    }

    public init(name: String, command: [String]? = nil) {
        storage = Storage(Fields(name: name, command: command))
    }

    public static func == (lhs: JobConfig, rhs: JobConfig) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }
}
