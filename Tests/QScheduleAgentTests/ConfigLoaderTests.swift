import Foundation
import Testing
@testable import QScheduleAgent

@Suite("agent.conf")
struct ConfigLoaderTests {
    @Test("parsed TOML documents can be freed: TOMLKit's tree pointer is still found (else every load and reload leaks it)")
    func tomlDocumentsAreFreed() throws {
        #expect(TOMLDocument.canFree)
        let document = try TOMLDocument(parsing: "a = \"x\"\n[t]\nb = \"y\"\nc = 1\n")
        defer { document.free() }
        #expect(TOMLDocument.keys(of: document.root).sorted() == ["a", "t"])
        #expect(document.root["a"]?.stringValue == "x")
        #expect(document.root["t"]?.table.map { TOMLDocument.keys(of: $0).sorted() } == ["b", "c"])
        #expect(document.root["t"]?.table?["c"]?.stringValue == nil)
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let minimal = """
        [agent]
        token = "0123456789abcdef"

        """

    func parse(_ text: String, environment: [String: String] = [:]) throws -> AgentConfig {
        try ConfigLoader.parse(text, fileName: "agent.conf", baseDirectory: "/srv/qagent", environment: environment)
    }

    func error(_ text: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try parse(text, environment: environment)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("agent.conf.example loads as-is, with its demo jobs")
    func exampleLoads() throws {
        let path = Self.repositoryRoot.appendingPathComponent("agent.conf.example").path
        let config = try ConfigLoader.load(path: path, environment: [:])
        #expect(config.jobs.count >= 3)
        #expect(config.agent.tokens == ["demo-token-change-me"])
        #expect(config.agent.dataDir == Self.repositoryRoot.appendingPathComponent("data").path)
        let report = try #require(config.jobs.first { $0.name == "qschedule.demo.report" })
        #expect(report.command?.first == Self.repositoryRoot.appendingPathComponent("Examples/jobs/report.sh").path)
        #expect(FileManager.default.isExecutableFile(atPath: report.command![0]))
    }

    /// The part of agent.conf.example between two markers with its `# key = value` lines and
    /// `# [table]` headers uncommented (comment-only lines dropped), minus keys starting with `skipping`.
    static func uncommentedExample(from start: String, to end: String, skipping: [String] = []) throws -> String {
        let text = try String(contentsOfFile: repositoryRoot.appendingPathComponent("agent.conf.example").path, encoding: .utf8)
        let lower = try #require(text.range(of: start)).lowerBound
        let upper = try #require(text.range(of: end, range: lower..<text.endIndex)).lowerBound
        return text[lower..<upper].split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let body = line.hasPrefix("# ") ? String(line.dropFirst(2)) : String(line)
            guard body.hasPrefix("[") || body.first?.isLetter == true else { return "" }
            return skipping.contains { body.hasPrefix($0 + " ") } ? "" : body
        }.joined(separator: "\n")
    }

    @Test("agent.conf.example's [report] and [scheduler] keys, uncommented, load with the code's defaults")
    func exampleUpstreamKeys() throws {
        // The example's TLS files do not exist here; those keys are tested in TLSTests.
        let upstream = try Self.uncommentedExample(from: "# [report]", to: "# [cluster]", skipping: ["ca_file", "cert_file", "key_file"])
        let config = try parse("[agent]\ntoken = \"0123456789abcdef\"\n" + upstream)
        let report = try #require(config.report)
        let defaults = ReportSettings(url: report.url)
        #expect(report.url.absoluteString == "http://scheduler.example/api2/agent/report.do")
        let documented: [Int] = [report.outboxMax, report.batchMax, report.batchMaxBytes, report.backoffMinMs, report.backoffMaxMs,
                 report.heartbeatInterval, report.timeout, report.flushTimeout]
        let coded: [Int] = [defaults.outboxMax, defaults.batchMax, defaults.batchMaxBytes, defaults.backoffMinMs, defaults.backoffMaxMs,
                    defaults.heartbeatInterval, defaults.timeout, defaults.flushTimeout]
        #expect(documented == coded)
        let scheduler = try #require(config.scheduler)
        #expect(scheduler.url.absoluteString == "http://scheduler.example")
        #expect(scheduler.timeout == SchedulerSettings(url: scheduler.url).timeout)
    }

    /// `key = value  # comment` lines of agent.conf.example, commented-out ones included.
    static func exampleLines(from start: String, to end: String?) throws -> [(key: String, value: String, comment: String)] {
        let path = repositoryRoot.appendingPathComponent("agent.conf.example").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let from = try #require(text.range(of: start)).upperBound
        let to = end.flatMap { text.range(of: $0, range: from..<text.endIndex)?.lowerBound } ?? text.endIndex
        return text[from..<to].split(separator: "\n").compactMap { line in
            let body = line.hasPrefix("# ") ? line.dropFirst(2) : line[...]
            guard let equals = body.firstIndex(of: "="), body.first?.isLetter == true else { return nil }
            let key = body[..<equals].trimmingCharacters(in: .whitespaces)
            guard key.allSatisfy({ $0.isLetter || $0 == "_" }) else { return nil }
            let rest = body[body.index(after: equals)...]
            let hash = rest.range(of: "  #")?.lowerBound ?? rest.endIndex
            return (key, rest[..<hash].trimmingCharacters(in: .whitespaces), String(rest[hash...]))
        }
    }

    @Test("agent.conf.example shows the code's default for every [agent] and [[job]] key (or names it beside a demo value)")
    func exampleDefaults() throws {
        let agent = AgentSettings()
        let job = JobConfig(name: "x")
        let coded: [String: String] = [
            "app_name": "\"\(agent.appName)\"", "app_id": "\(agent.appID)", "listen": "\"\(agent.listen)\"",
            "data_dir": "\"\(agent.dataDir)\"", "shutdown_grace": "\(agent.shutdownGrace)", "max_running": "\(agent.maxRunning)",
            "max_queued": "\(agent.maxQueued)", "max_request_bytes": "\(agent.maxRequestBytes)", "kill_grace": "\(agent.killGrace)",
            "max_log_bytes": "\(agent.maxLogBytes)", "retention_days": "\(agent.retentionDays)", "idle_timeout": "\(agent.idleTimeout)",
            "read_timeout": "\(agent.readTimeout)", "max_connections": "\(agent.maxConnections)",
            "log_format": "\"\(agent.logFormat.rawValue)\"", "metrics_token": "\(agent.metricsToken)",
            "strict_permissions": "\(agent.strictPermissions)", "blocking_threads": "\(agent.blockingThreads)",
        ]
        // Keys without a default value: their comment says what happens without them.
        let noDefault: Set<String> = ["token", "token_file", "advertise_ip", "timezone", "tls_cert", "tls_key", "tls_client_ca"]
        let agentLines = try Self.exampleLines(from: "[agent]\n", to: "[report]")
        #expect(Set(agentLines.map(\.key)) == Set(coded.keys).union(noDefault), "every [agent] key is in the example")
        for line in agentLines where !noDefault.contains(line.key) {
            let expected = try #require(coded[line.key])
            #expect(line.value == expected || line.comment.contains("default: \(expected))"),
                    "\(line.key) = \(line.value): the code's default is \(expected)")
        }
        let jobCoded: [String: String] = [
            "recover": "\"\(job.recover.rawValue)\"", "max_attempts": "\(job.maxAttempts)", "timeout": "\(job.timeout)",
            "overlap": "\"\(job.overlap.rawValue)\"", "max_concurrency": "\(job.maxConcurrency)", "max_queued": "\(job.maxQueued)",
            "enabled": "\(job.enabled)", "misfire": "\"\(job.misfire.rawValue)\"",
            "retries": "\(job.retries)", "retry_backoff": "\(job.retryBackoff)", "alert_after_failures": "\(job.consecutiveFailTimesAlertThreshold)",
        ]
        let jobLines = try Self.exampleLines(from: "[[job]]\n", to: "[[job]]\nname = \"qschedule.demo.report\"") + [
            try #require(try Self.exampleLines(from: "name = \"qschedule.demo.report\"", to: nil).first { $0.key == "misfire" }),
        ]
        for key in jobCoded.keys {
            let line = try #require(jobLines.first { $0.key == key }, "[[job]] \(key) is not shown")
            let expected = try #require(jobCoded[key])
            #expect(line.value == expected || line.comment.contains("default: \(expected))"),
                    "[[job]] \(key) = \(line.value): the code's default is \(expected)")
        }
    }

    @Test("agent.conf.example's [cluster] keys, uncommented, load with the code's defaults")
    func exampleClusterKeys() throws {
        // The example's password file does not exist here; the key itself is tested elsewhere.
        let cluster = try Self.uncommentedExample(from: "# [cluster]", to: "[[job]]", skipping: ["password_file", "ca_file"])
        let settings = try #require(try parse("[agent]\ntoken = \"0123456789abcdef\"\n" + cluster).cluster)
        var defaults = ClusterSettings(host: "db.example", port: 5432, username: "qagent", database: "qagent")
        defaults.password = settings.password
        #expect(settings == defaults)
    }

    @Test("defaults and values are read with their types")
    func values() throws {
        let config = try parse("""
            [agent]
            app_name = "a"
            app_id = 3
            listen = "[::1]:8080"
            advertise_ip = "10.0.0.5"
            data_dir = "state"
            token = ["token-one-0123456789", "token-two-0123456789"]
            timezone = "Asia/Shanghai"
            max_running = 2
            max_queued = 0

            [report]
            url = "http://r.example/api2/agent/report.do"
            outbox_max = 50
            batch_max = 7
            backoff_min_ms = 10
            backoff_max_ms = 20
            heartbeat_interval = 0

            [scheduler]
            url = "https://central.example:8443/qschedule"
            timeout = 3

            [[job]]
            name = "j.1"
            command = ["/bin/echo", "hi"]
            recover = "discard"
            timeout = 9
            overlap = "cover"
            enabled = false
            """)
        #expect(config.agent.listen == ListenAddress(host: "::1", port: 8080))
        #expect(config.agent.advertiseIP == "10.0.0.5")
        #expect(config.agent.dataDir == "/srv/qagent/state")
        #expect(config.agent.tokens == ["token-one-0123456789", "token-two-0123456789"])
        #expect(config.agent.timeZone.identifier == "Asia/Shanghai")
        #expect(config.agent.maxQueued == 0)
        #expect(config.reportURL?.host == "r.example")
        let report = try #require(config.report)
        #expect((report.outboxMax, report.batchMax, report.backoffMinMs, report.backoffMaxMs) == (50, 7, 10, 20))
        #expect(report.heartbeatInterval == 0 && report.batchMaxBytes == 256 << 10 && report.timeout == 10 && report.flushTimeout == 5)
        #expect(config.scheduler?.url.absoluteString == "https://central.example:8443/qschedule")
        #expect(config.scheduler?.timeout == 3)
        let job = try #require(config.jobs.first)
        #expect(job.command == ["/bin/echo", "hi"])
        #expect(job.recover == .discard)
        #expect(job.overlap == .cover)
        #expect(job.timeout == 9)
        #expect(job.enabled == false)
        #expect(job.maxQueued == 100)
    }

    @Test("unknown keys and bad values name the file, line and key", arguments: [
        ("[agent]\ntoken = \"0123456789abcdef\"\nlisten_port = 1\n", "agent.conf:3: [agent] listen_port: unknown key"),
        ("[agent]\ntoken = \"0123456789abcdef\"\nlisten = \"nope\"\n", "agent.conf:3: [agent] listen: must be \"ip:port\""),
        ("[agent]\ntoken = \"0123456789abcdef\"\nlisten = \"1.2.3.4:70000\"\n", "agent.conf:3: [agent] listen:"),
        ("[agent]\ntoken = \"0123456789abcdef\"\nadvertise_ip = \"host\"\n", "agent.conf:3: [agent] advertise_ip: must be an IPv4 or IPv6 literal"),
        ("[agent]\ntoken = \"0123456789abcdef\"\ntimezone = \"Mars/Base\"\n", "agent.conf:3: [agent] timezone: unknown IANA time zone"),
        ("[agent]\ntoken = \"0123456789abcdef\"\nmax_running = 0\n", "agent.conf:3: [agent] max_running: must be >= 1"),
        ("[agent]\ntoken = \"0123456789abcdef\"\nmax_running = \"4\"\n", "agent.conf:3: [agent] max_running: must be an integer"),
        ("[agent]\ntoken = 5\n", "agent.conf:2: [agent] token: must be a string or an array of strings"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[report]\nurl = \"ftp://x\"\n", "agent.conf:4: [report] url: must be an http:// or https:// URL"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[report]\noutbox_max = 5\n", "agent.conf:3: [report] url: is required"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[report]\nurl = \"http://r\"\noutbox_max = 0\n", "agent.conf:5: [report] outbox_max: must be >= 1"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[report]\nurl = \"http://r\"\nbackoff_min_ms = 500\nbackoff_max_ms = 100\n", "agent.conf:6: [report] backoff_max_ms: must be >= 500"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[report]\nurl = \"http://r\"\nretries = 3\n", "agent.conf:5: [report] retries: unknown key"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[scheduler]\nurl = \"central\"\n", "agent.conf:4: [scheduler] url: must be an http:// or https:// URL"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[scheduler]\nurl = \"http://c\"\ntimeout = 0\n", "agent.conf:5: [scheduler] timeout: must be >= 1"),
        ("[agent]\ntoken = \"0123456789abcdef\"\n[extra]\n", "agent.conf:3: top level extra: unknown key"),
        (minimal + "[[job]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n\n[[job]]\nname = \"b\"\ncommand = \"/bin/true\"\n",
         "agent.conf:9: [[job]] \"b\" command: must be an array of strings"),
        (minimal + "[[job]]\nname = \"a\"\ncomand = [\"/bin/true\"]\n", "agent.conf:5: [[job]] \"a\" comand: unknown key"),
        (minimal + "[[job]]\nname = \"a b\"\n", "agent.conf:4: [[job]] #1 name: must be 1-128 of"),
        (minimal + "[[job]]\ndesc = \"x\"\n", "agent.conf:3: [[job]] #1 name: is required"),
        (minimal + "[[job]]\nname = \"a\"\ntimeout = -1\n", "agent.conf:5: [[job]] \"a\" timeout: must be >= 0"),
        (minimal + "[[job]]\nname = \"a\"\noverlap = \"parallel\"\n", "agent.conf:5: [[job]] \"a\" overlap: must be one of \"concurrent\", \"serial\", \"discard\", \"cover\", got \"parallel\""),
        (minimal + "[[job]]\nname = \"a\"\nrecover = \"again\"\n", "agent.conf:5: [[job]] \"a\" recover: must be one of"),
        (minimal + "[[job]]\nname = \"a\"\nenabled = \"yes\"\n", "agent.conf:5: [[job]] \"a\" enabled: must be true or false"),
        (minimal + "[[job]]\nname = \"a\"\ncommand = []\n", "agent.conf:5: [[job]] \"a\" command: must name a program"),
        (minimal + "[[job]]\nname = \"a\"\n[[job]]\nname = \"a\"\n", "agent.conf:6: [[job]] name: \"a\" is declared twice"),
        ("[agent]\ntoken = \"0123456789abcdef\"\nlisten = \n", "agent.conf:3: not valid TOML"),
    ])
    func rejects(text: String, expected: String) {
        let message = error(text)
        #expect(message.hasPrefix(expected), "got: \(message)")
    }

    @Test("the agent refuses to start with no token; QAGENT_TOKEN overrides the file")
    func tokens() throws {
        #expect(error("[agent]\nlisten = \"127.0.0.1:1\"\n").contains("no token configured"))
        #expect(error("[agent]\ntoken = \"  \"\n").contains("no token configured"))
        #expect(error("").contains("no token configured"))
        let fromEnvironment = try parse("[agent]\ntoken = \"file\"\n", environment: ["QAGENT_TOKEN": "env-token-0123456789,env-token-abcdefghij"])
        #expect(fromEnvironment.agent.tokens == ["env-token-0123456789", "env-token-abcdefghij"])
        let onlyEnvironment = try parse("", environment: ["QAGENT_TOKEN": "env-token-0123456789"])
        #expect(onlyEnvironment.agent.tokens == ["env-token-0123456789"])
    }

    @Test("a token shorter than 16 characters is refused at start, naming where it came from")
    func weakTokens() throws {
        let why = "at least 16 are required, since a short token can be guessed by anyone who reaches the port"
        #expect(error("[agent]\napp_id = 1\ntoken = \"0123456789abcde\"\n") == "agent.conf:3: [agent] token: the token has 15 characters; \(why) (generate one with: openssl rand -hex 16)")
        #expect(error("[agent]\ntoken = [\"0123456789abcdef\", \"short\"]\n").hasPrefix("agent.conf:2: [agent] token: token #2 has 5 characters; \(why)"))
        #expect(error("", environment: ["QAGENT_TOKEN": "0123456789abcdef,weak"]).hasPrefix("QAGENT_TOKEN: token #2 has 4 characters; \(why)"))
        #expect(try parse("[agent]\ntoken = \"0123456789abcdef\"\n").agent.tokens == ["0123456789abcdef"])
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "short\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        do {
            _ = try ConfigLoader.parse("[agent]\ntoken_file = \"token\"\n", baseDirectory: dir)
            Issue.record("a weak token in token_file was accepted")
        } catch {
            #expect("\(error)".hasPrefix("agent.conf:2: [agent] token_file: \"\(dir)/token\": the token has 5 characters"), "\(error)")
        }
    }

    @Test("token_file holds one token per line")
    func tokenFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "alpha-0123456789abcdef\nbeta-0123456789abcdef\n\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let config = try ConfigLoader.parse("[agent]\ntoken_file = \"token\"\n", baseDirectory: dir)
        #expect(config.agent.tokens == ["alpha-0123456789abcdef", "beta-0123456789abcdef"])
        #expect(throws: ConfigError.self) { try ConfigLoader.parse("[agent]\ntoken_file = \"missing\"\n", baseDirectory: dir) }
    }

    @Test("a job without command needs a compiled-in Swift handler of its name")
    func swiftHandlerRequired() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir) + "[[job]]\nname = \"swift.job\"\n", baseDirectory: dir)
        #expect(throws: ConfigError.self) { try Agent(config: config) }
        var handlers = HandlerRegistry()
        handlers.register("swift.job") { _ in }
        _ = try Agent(config: config, handlers: handlers)
    }
}
