import Foundation
import TOMLKit

/// Loads and validates `agent.conf` (DESIGN §8).
///
/// Unknown keys and bad values are errors naming the file, line and key. Secrets from the
/// environment win over the file: `QAGENT_TOKEN` (comma-separated for rotation) replaces
/// `token`/`token_file`. Relative paths are resolved against the config file's folder.
public enum ConfigLoader {
    /// Reads and validates the file at `path`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("\(path): cannot read the configuration file: \(error.localizedDescription)")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, fileName: path, baseDirectory: folder, environment: environment)
    }

    /// Validates configuration text; `fileName` only appears in messages.
    public static func parse(
        _ text: String,
        fileName: String = "agent.conf",
        baseDirectory: String = FileManager.default.currentDirectoryPath,
        environment: [String: String] = [:]
    ) throws -> AgentConfig {
        let document: TOMLDocument
        do {
            document = try TOMLDocument(parsing: text)
        } catch let error as TOMLParseError {
            throw ConfigError("\(fileName):\(error.source.begin.line): not valid TOML: \(error.description)")
        } catch {
            throw ConfigError("\(fileName): not valid TOML: \(error)")
        }
        // Everything kept from the document is copied out of it before this returns.
        defer { document.free() }
        let root = document.root
        let locator = TOMLKeyLocator(text: text)
        let top = TableReader(table: root, tableName: "", label: "top level", fileName: fileName, locator: locator)
        try top.rejectUnknownKeys(allowed: ["agent", "report", "scheduler", "cluster", "job"])

        var settings = AgentSettings()
        var warnings: [String] = []
        var fileTokens: [String] = []
        // Where the tokens in effect came from, for an error about a weak one.
        var tokenError: (String) -> ConfigError = { ConfigError("\(fileName): [agent] token: \($0)") }
        if let agent = try top.table("agent") {
            let reader = TableReader(table: agent, tableName: "agent", label: "[agent]", fileName: fileName, locator: locator)
            try reader.rejectUnknownKeys(allowed: [
                "app_name", "app_id", "listen", "advertise_ip", "data_dir", "token", "token_file", "timezone",
                "shutdown_grace", "max_running", "max_queued", "max_request_bytes", "kill_grace", "max_log_bytes", "retention_days",
                "idle_timeout", "read_timeout", "max_connections", "log_format", "metrics_token", "strict_permissions",
                "tls_cert", "tls_key", "tls_client_ca", "blocking_threads",
            ])
            settings.strictPermissions = try reader.bool("strict_permissions") ?? settings.strictPermissions
            settings.appName = try reader.string("app_name") ?? settings.appName
            settings.appID = try reader.int("app_id", range: 0...Int.max) ?? settings.appID
            if let listen = try reader.string("listen") {
                guard let address = ListenAddress(parsing: listen) else {
                    throw reader.error("listen", "must be \"ip:port\" with a port from 0 to 65535, got \"\(listen)\"")
                }
                settings.listen = address
            }
            if let ip = try reader.string("advertise_ip") {
                guard IPAddress(ip) != nil else { throw reader.error("advertise_ip", "must be an IPv4 or IPv6 literal, got \"\(ip)\"") }
                settings.advertiseIP = ip
            }
            if let dir = try reader.string("data_dir") {
                guard !dir.isEmpty else { throw reader.error("data_dir", "must not be empty") }
                settings.dataDir = resolve(dir, against: baseDirectory)
            } else {
                settings.dataDir = resolve(settings.dataDir, against: baseDirectory)
            }
            tokenError = { reader.error("token", $0) }
            if let tokenValue = agent["token"] {
                if let single = tokenValue.stringValue {
                    fileTokens = [single]
                } else if let list = tokenValue.array, list.allSatisfy({ $0.stringValue != nil }) {
                    fileTokens = list.compactMap(\.stringValue)
                } else {
                    throw reader.error("token", "must be a string or an array of strings")
                }
            }
            if let tokenFile = try reader.string("token_file") {
                let tokenPath = resolve(tokenFile, against: baseDirectory)
                guard let contents = try? String(contentsOfFile: tokenPath, encoding: .utf8) else {
                    throw reader.error("token_file", "cannot read \"\(tokenPath)\"")
                }
                try reader.checkSecret("token_file", path: tokenPath, strict: settings.strictPermissions, warnings: &warnings)
                fileTokens += contents.split(whereSeparator: \.isNewline).map(String.init)
                if agent["token"] == nil { tokenError = { reader.error("token_file", "\"\(tokenPath)\": \($0)") } }
            }
            if let zone = try reader.string("timezone") {
                guard let timeZone = TimeZone(identifier: zone) else {
                    throw reader.error("timezone", "unknown IANA time zone \"\(zone)\"")
                }
                settings.timeZone = timeZone
            }
            settings.shutdownGrace = try reader.int("shutdown_grace", range: 0...86_400) ?? settings.shutdownGrace
            settings.maxRunning = try reader.int("max_running", range: 1...100_000) ?? settings.maxRunning
            settings.maxQueued = try reader.int("max_queued", range: 0...1_000_000) ?? settings.maxQueued
            settings.maxRequestBytes = try reader.int("max_request_bytes", range: 1024...(64 << 20)) ?? settings.maxRequestBytes
            settings.idleTimeout = try reader.int("idle_timeout", range: 1...86_400) ?? settings.idleTimeout
            settings.readTimeout = try reader.int("read_timeout", range: 1...86_400) ?? settings.readTimeout
            settings.maxConnections = try reader.int("max_connections", range: 1...1_000_000) ?? settings.maxConnections
            settings.killGrace = try reader.int("kill_grace", range: 0...3600) ?? settings.killGrace
            settings.maxLogBytes = try reader.int("max_log_bytes", range: 1024...(1 << 40)) ?? settings.maxLogBytes
            settings.retentionDays = try reader.int("retention_days", range: 1...3650) ?? settings.retentionDays
            settings.logFormat = try reader.choice("log_format", LogFormat.self) ?? settings.logFormat
            settings.metricsToken = try reader.bool("metrics_token") ?? settings.metricsToken
            settings.blockingThreads = try reader.int("blocking_threads", range: 1...256) ?? settings.blockingThreads
            settings.tls = try reader.listenerTLS(baseDirectory: baseDirectory, strict: settings.strictPermissions, warnings: &warnings)
        } else {
            settings.dataDir = resolve(settings.dataDir, against: baseDirectory)
        }

        if let envTokens = environment["QAGENT_TOKEN"], !envTokens.isEmpty {
            fileTokens = envTokens.split(separator: ",").map(String.init)
            tokenError = { ConfigError("QAGENT_TOKEN: \($0)") }
        }
        settings.tokens = fileTokens.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !settings.tokens.isEmpty else {
            throw ConfigError("\(fileName): no token configured: set [agent] token or token_file, or the QAGENT_TOKEN environment variable")
        }
        for (index, token) in settings.tokens.enumerated() where token.count < AgentSettings.minimumTokenLength {
            let which = settings.tokens.count > 1 ? "token #\(index + 1)" : "the token"
            throw tokenError("\(which) has \(token.count) characters; at least \(AgentSettings.minimumTokenLength) are required, "
                + "since a short token can be guessed by anyone who reaches the port (generate one with: openssl rand -hex 16)")
        }

        let strict = settings.strictPermissions
        var report: ReportSettings?
        if let table = try top.table("report") {
            let reader = TableReader(table: table, tableName: "report", label: "[report]", fileName: fileName, locator: locator)
            try reader.rejectUnknownKeys(allowed: [
                "url", "outbox_max", "batch_max", "batch_max_bytes", "backoff_min_ms", "backoff_max_ms",
                "heartbeat_interval", "timeout", "flush_timeout", "ca_file", "cert_file", "key_file",
            ])
            var settings = ReportSettings(url: try reader.url())
            settings.outboxMax = try reader.int("outbox_max", range: 1...10_000_000) ?? settings.outboxMax
            settings.batchMax = try reader.int("batch_max", range: 1...10_000) ?? settings.batchMax
            settings.batchMaxBytes = try reader.int("batch_max_bytes", range: 1024...(64 << 20)) ?? settings.batchMaxBytes
            settings.backoffMinMs = try reader.int("backoff_min_ms", range: 1...3_600_000) ?? settings.backoffMinMs
            settings.backoffMaxMs = try reader.int("backoff_max_ms", range: settings.backoffMinMs...86_400_000) ?? max(settings.backoffMaxMs, settings.backoffMinMs)
            settings.heartbeatInterval = try reader.int("heartbeat_interval", range: 0...86_400) ?? settings.heartbeatInterval
            settings.timeout = try reader.int("timeout", range: 1...3600) ?? settings.timeout
            settings.flushTimeout = try reader.int("flush_timeout", range: 0...3600) ?? settings.flushTimeout
            settings.tls = try reader.clientTLS(baseDirectory: baseDirectory, strict: strict, warnings: &warnings)
            report = settings
        }
        var scheduler: SchedulerSettings?
        if let table = try top.table("scheduler") {
            let reader = TableReader(table: table, tableName: "scheduler", label: "[scheduler]", fileName: fileName, locator: locator)
            try reader.rejectUnknownKeys(allowed: ["url", "timeout", "ca_file", "cert_file", "key_file"])
            var settings = SchedulerSettings(url: try reader.url())
            settings.timeout = try reader.int("timeout", range: 1...3600) ?? settings.timeout
            settings.tls = try reader.clientTLS(baseDirectory: baseDirectory, strict: strict, warnings: &warnings)
            scheduler = settings
        }

        let cluster = try parseCluster(
            top, fileName: fileName, baseDirectory: baseDirectory, environment: environment, locator: locator, killGrace: settings.killGrace,
            strict: settings.strictPermissions, warnings: &warnings)
        if cluster != nil, scheduler != nil {
            throw ConfigError("\(fileName):\(locator.line(table: "", key: "cluster") ?? 1): [cluster] and [scheduler] exclude each other: "
                + "a cluster's agents are the scheduler; remove one of them")
        }

        var jobs: [JobConfig] = []
        if let jobValue = root["job"] {
            guard let list = jobValue.array else {
                throw ConfigError("\(fileName):\(locator.line(table: "", key: "job") ?? 1): job: must be an array of tables ([[job]])")
            }
            for index in 0..<list.count {
                guard let table = list[index].table else {
                    throw ConfigError("\(fileName): job #\(index + 1): must be a table")
                }
                let job = try parseJob(table, index: index, fileName: fileName, baseDirectory: baseDirectory, locator: locator)
                if jobs.contains(where: { $0.name == job.name }) {
                    throw ConfigError("\(fileName):\(locator.line(table: "job", index: index, key: "name") ?? 1): [[job]] name: \"\(job.name)\" is declared twice")
                }
                jobs.append(job)
            }
        }
        var config = AgentConfig(agent: settings, report: report, scheduler: scheduler, cluster: cluster, jobs: jobs)
        config.warnings = warnings
        return config
    }

    private static func parseJob(_ table: TOMLTable, index: Int, fileName: String, baseDirectory: String, locator: TOMLKeyLocator) throws -> JobConfig {
        let probe = TableReader(table: table, tableName: "job", index: index, label: "[[job]] #\(index + 1)", fileName: fileName, locator: locator)
        guard let name = try probe.string("name") else { throw probe.error("name", "is required") }
        guard Identifier.isJobName(name) else {
            throw probe.error("name", "must be 1-128 of A-Z a-z 0-9 _ . -, got \"\(name)\"")
        }
        let reader = TableReader(table: table, tableName: "job", index: index, label: "[[job]] \"\(name)\"", fileName: fileName, locator: locator)
        try reader.rejectUnknownKeys(allowed: [
            "name", "desc", "cron", "misfire", "command", "cwd", "env", "user", "recover", "max_attempts", "timeout", "overlap", "max_concurrency", "max_queued", "enabled",
            "load_balance", "retries", "retry_backoff", "alert_after_failures",
        ])
        var job = JobConfig(name: name)
        job.desc = try reader.string("desc") ?? ""
        if let cron = try reader.string("cron") {
            do {
                job.cron = try CronExpression(cron)
            } catch {
                throw reader.error("cron", "\(error)")
            }
        }
        if let commandValue = table["command"] {
            guard let list = commandValue.array, list.allSatisfy({ $0.stringValue != nil }) else {
                throw reader.error("command", "must be an array of strings (argv), e.g. [\"/usr/bin/env\", \"true\"]; a shell string is not accepted")
            }
            let argv = list.compactMap(\.stringValue)
            guard var program = argv.first, !program.isEmpty else { throw reader.error("command", "must name a program as its first element") }
            if program.contains("/") { program = resolve(program, against: baseDirectory) }
            job.command = [program] + argv.dropFirst()
        }
        if let cwd = try reader.string("cwd") {
            let path = resolve(cwd, against: baseDirectory)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw reader.error("cwd", "\"\(path)\" is not a directory")
            }
            job.workingDirectory = path
        }
        if let envValue = table["env"] {
            guard let envTable = envValue.table else { throw reader.error("env", "must be a table of strings, e.g. env = { LANG = \"C\" }") }
            for key in TOMLDocument.keys(of: envTable).sorted() {
                guard let value = envTable[key]?.stringValue else { throw reader.error("env", "\(key) must be a string") }
                guard !key.isEmpty, !key.contains("="), !key.hasPrefix("QSCHEDULE_") else {
                    throw reader.error("env", "\"\(key)\" is not a name a job may set")
                }
                job.environment[key] = value
            }
        }
        if let userName = try reader.string("user") {
            guard let account = UserAccount.lookup(userName) else { throw reader.error("user", "no such user \"\(userName)\"") }
            guard geteuid() == 0 || account.uid == geteuid() else {
                throw reader.error("user", "running a job as \"\(userName)\" needs qagent to run as root")
            }
            job.user = account
        }
        if (job.workingDirectory != nil || !job.environment.isEmpty || job.user != nil), job.command == nil {
            throw reader.error(job.user != nil ? "user" : job.workingDirectory != nil ? "cwd" : "env", "only applies to a job with a command")
        }
        job.recover = try reader.choice("recover", RecoverPolicy.self) ?? job.recover
        job.misfire = try reader.choice("misfire", MisfirePolicy.self) ?? job.misfire
        job.maxAttempts = try reader.int("max_attempts", range: 1...100) ?? job.maxAttempts
        job.timeout = try reader.int("timeout", range: 0...(365 * 86_400)) ?? job.timeout
        job.retries = try reader.int("retries", range: 0...100) ?? job.retries
        job.consecutiveFailTimesAlertThreshold = try reader.int("alert_after_failures", range: 0...1_000_000) ?? job.consecutiveFailTimesAlertThreshold
        job.retryBackoff = try reader.int("retry_backoff", range: 0...JobConfig.retryBackoffCap) ?? job.retryBackoff
        job.overlap = try reader.choice("overlap", OverlapPolicy.self) ?? job.overlap
        job.maxConcurrency = try reader.int("max_concurrency", range: 1...100_000) ?? job.maxConcurrency
        job.maxQueued = try reader.int("max_queued", range: 0...1_000_000) ?? job.maxQueued
        job.enabled = try reader.bool("enabled") ?? job.enabled
        job.loadBalance = try reader.choice("load_balance", LoadBalance.self)?.rawValue ?? job.loadBalance
        return job
    }

    static func resolve(_ path: String, against base: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: base).appendingPathComponent(path).standardizedFileURL.path
    }
}
