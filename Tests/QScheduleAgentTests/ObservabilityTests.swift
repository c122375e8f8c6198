import Foundation
import Synchronization
import Logging
import Testing
@testable import QScheduleAgent

/// Logs and metrics as an operator reads them: the real binary's JSON log lines per task
/// state change, the closing line of every task log, rate-limited token refusals that never
/// show the token, and `GET /metrics` parsed by Prometheus's own Python client.
@Suite("Logs and metrics")
struct ObservabilityTests {
    static let jobs = """
        [[job]]
        name = "o.ok"
        command = ["/bin/sh", "-c", "echo working; printf 'no newline at the end'"]

        [[job]]
        name = "o.fail"
        command = ["/bin/sh", "-c", "exit 3"]

        [[job]]
        name = "o.slow"
        timeout = 1
        command = ["/bin/sleep", "30"]

        [[job]]
        name = "o.kill"
        command = ["/bin/sleep", "30"]

        """

    /// The agent's output lines that are JSON objects; any other line fails the test.
    static func jsonLines(_ log: String) -> [[String: JSONValue]] {
        log.split(separator: "\n").compactMap { line in
            let object = JSONValue(parsing: String(line))?.objectValue
            #expect(object != nil, "not a JSON object: \(line)")
            return object
        }
    }

    @Test("JSON log handler: one object per line, stable keys first, metadata typed, strings escaped")
    func jsonHandler() {
        let lines = Mutex<[String]>([])
        var handler = JSONLogHandler(label: "qagent") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .debug
        handler[metadataKey: "host"] = "h1"
        let logger = Logger(label: "qagent") { _ in handler }
        logger.warning("tab\there \"quoted\" \u{1}", metadata: [
            "attempt": .stringConvertible(2), "ok": .stringConvertible(true), "list": ["a", "b"], "msg": "cannot replace", "text": "x\ny",
        ])
        logger.trace("below the level")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = written[0]
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false)
        #expect(line.hasPrefix(#"{"ts":""#))
        let object = JSONValue(parsing: line)?.objectValue ?? [:]
        #expect(object["level"] == .string("warning"))
        #expect(object["msg"] == .string("tab\there \"quoted\" \u{1}"))
        #expect(object["logger"] == .string("qagent"))
        #expect(object["attempt"] == .int(2))
        #expect(object["ok"] == .bool(true))
        #expect(object["list"] == .array([.string("a"), .string("b")]))
        #expect(object["text"] == .string("x\ny"))
        #expect(object["host"] == .string("h1"))
        #expect(object.count == 9, "\(object.keys.sorted())")
        // ts: RFC 3339, UTC, milliseconds.
        let ts = object["ts"]?.stringValue ?? ""
        #expect(ts.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil, "\(ts)")
    }

    @Test("JSON log timestamps: what Date.ISO8601FormatStyle writes with fractional seconds, for any second and millisecond")
    func jsonTimestamps() {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        var generator = SystemRandomNumberGenerator()
        var seconds = [0, 59, 951_782_400, 1_782_863_999, 4_102_444_799]  // epoch, 2000-02-29, a year's last second, 2099
        for _ in 0..<2_000 { seconds.append(Int.random(in: 0...4_102_444_799, using: &generator)) }
        for second in seconds {
            for millisecond in [0, 9, 10, 99, 100, 999, Int.random(in: 0...999, using: &generator)] {
                // Inside the millisecond, clear of the rounding at its edges.
                let date = Date(timeIntervalSince1970: Double(second) + Double(millisecond) / 1000 + 0.0004)
                let ours = UTCMillisecondTimestamp.format(second: second, millisecond: millisecond)
                #expect(ours == date.formatted(style))
                if ours != date.formatted(style) { return }
            }
        }
        let now = Date()
        let parsed = try? style.parse(UTCMillisecondTimestamp.now())
        #expect(parsed.map { abs($0.timeIntervalSince(now)) < 5 } == true)
    }

    /// Collects what `StreamLogHandler` writes.
    final class LineStream: TextOutputStream, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        func write(_ string: String) { lines.withLock { $0.append(string) } }
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String { "disk full: no space left" }
    }

    @Test("text log handler: swift-log's StreamLogHandler lines byte for byte, for every kind of metadata, provider, error and label")
    func textHandlerMatchesStreamLogHandler() {
        let provider = Logger.MetadataProvider { ["trace_id": "t-9", "job": "from-provider"] }
        let events: [LogEvent] = [
            LogEvent(level: .info, message: "no metadata", metadata: nil, source: nil, file: #fileID, function: #function, line: #line),
            LogEvent(level: .info, message: "empty metadata", metadata: [:], source: "Custom", file: #fileID, function: #function, line: #line),
            LogEvent(
                level: .warning, message: "task failed", metadata: [
                    "task": "7", "job": "b.fail", "attempt": .stringConvertible(2), "duration_ms": .stringConvertible(Int64(1234)),
                    "ok": .stringConvertible(true), "ratio": .stringConvertible(0.25), "message": "exit code 3\nsecond line, ünïcode",
                    "list": ["a", .stringConvertible(1), ["nested"]], "map": ["k": "v"], "empty": [:], "": "empty key",
                ], source: nil, file: #fileID, function: #function, line: #line),
            LogEvent(
                level: .error, message: "with an error", error: TestFailure(), metadata: ["error.message": "replaced"], source: nil,
                file: #fileID, function: #function, line: #line),
            LogEvent(level: .critical, message: "only an error", error: TestFailure(), metadata: nil, source: nil, file: #fileID, function: #function, line: #line),
        ]
        for label in ["qagent", ""] {
            for metadataProvider in [nil, provider] {
                for handlerMetadata: Logger.Metadata in [[:], ["request": "r-1", "job": "from-handler"]] {
                    // Both lines of an event carry the same second; try again if one ticked by.
                    var ours: [String] = [], theirs: [String] = []
                    for _ in 0..<5 {
                        let sink = LineStream(), reference = LineStream()
                        var handler = TextLogHandler(label: label, level: .trace, metadataProvider: metadataProvider) { sink.write($0) }
                        var stream = StreamLogHandler(label: label, stream: reference, metadataProvider: metadataProvider)
                        for (key, value) in handlerMetadata {
                            handler[metadataKey: key] = value
                            stream[metadataKey: key] = value
                        }
                        let before = time(nil)
                        for event in events {
                            handler.log(event: event)
                            stream.log(event: event)
                        }
                        ours = sink.lines.withLock { $0 }
                        theirs = reference.lines.withLock { $0 }
                        if time(nil) == before { break }
                    }
                    #expect(ours.count == events.count)
                    #expect(ours == theirs, "label \(label), provider \(metadataProvider != nil), handler metadata \(handlerMetadata)")
                }
            }
        }
        // The level is the handler's, as the agent's `--log-level` sets it.
        let sink = LineStream()
        let logger = Logger(label: "qagent") { label in TextLogHandler(label: label, level: .notice) { sink.write($0) } }
        logger.info("below the level")
        logger.notice("at the level", metadata: ["job": "j"])
        let written = sink.lines.withLock { $0 }
        #expect(written.count == 1)
        #expect(written.first?.hasSuffix(" notice qagent: job=j [QScheduleAgentTests] at the level\n") == true, "\(written)")
        // The timestamp: local time to the second with the zone's offset, as strftime writes it.
        #expect(
            written.first?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} "#, options: .regularExpression) != nil, "\(written)")
    }

    @Test("the real binary with log_format = json: a line per task state change with task, job, attempt, state, duration_ms, exit_code; every task log ends with how it ended")
    func taskLifecycleLog() async throws {
        try await AgentProcess.with(jobs: Self.jobs, agentExtra: "log_format = \"json\"\nkill_grace = 1") { agent in
            var ids: [String: String] = [:]
            for job in ["o.ok", "o.fail", "o.slow", "o.kill"] {
                ids[job] = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#).message)
            }
            let killID = try #require(ids["o.kill"])
            #expect(await eventually { Self.jsonLines(agent.log).contains { $0["msg"] == .string("task started") && $0["task"] == .string(killID) } })
            #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(killID)"}"#).ret == true)
            #expect(await eventually { Self.jsonLines(agent.log).filter { $0["duration_ms"] != nil }.count == 4 })
            let lines = Self.jsonLines(agent.log)
            func events(_ job: String) -> [String] {
                lines.filter { $0["job"] == .string(job) }.compactMap { $0["msg"]?.stringValue }.filter { $0.hasPrefix("task ") }
            }
            #expect(events("o.ok") == ["task accepted", "task started", "task finished"])
            #expect(events("o.fail") == ["task accepted", "task started", "task failed"])
            #expect(events("o.slow") == ["task accepted", "task started", "task timed out"])
            #expect(events("o.kill") == ["task accepted", "task started", "task killed"])
            let failed = try #require(lines.first { $0["msg"] == .string("task failed") })
            #expect(failed["task"] == .string(ids["o.fail"]!))
            #expect(failed["attempt"] == .int(1))
            #expect(failed["state"] == .string("failed"))
            #expect(failed["result"] == .int(500))
            #expect(failed["exit_code"] == .int(3))
            #expect(failed["level"] == .string("warning"))
            #expect(failed["duration_ms"]?.intValue.map { $0 >= 0 } == true)
            let timedOut = try #require(lines.first { $0["msg"] == .string("task timed out") })
            #expect(timedOut["state"] == .string("timed_out") && timedOut["result"] == .int(504))
            #expect((timedOut["duration_ms"]?.intValue ?? 0) >= 1_000)
            #expect(lines.first { $0["msg"] == .string("task accepted") }?["trigger"] == .string("dispatch"))
            // Each task log ends with its closing line.
            let closing: [String: String] = [
                "o.ok": "[qagent] task finished (200) after ", "o.fail": "[qagent] task failed (500) after ",
                "o.slow": "[qagent] task timed out (504) after ", "o.kill": "[qagent] task killed (499) after ",
            ]
            for (job, prefix) in closing {
                let log = try #require(try await agent.call("GET", "/api2/tasks/\(ids[job]!)/log.do").json["data"]?["text"]?.stringValue)
                let last = log.split(separator: "\n").last.map(String.init) ?? ""
                #expect(last.hasPrefix(prefix), "\(job): \(log)")
            }
            let okLog = try await agent.call("GET", "/api2/tasks/\(ids["o.ok"]!)/log.do").json["data"]?["text"]?.stringValue ?? ""
            #expect(okLog.hasPrefix("working\nno newline at the end\n[qagent] task finished (200) after "), "\(okLog)")
            #expect(okLog.hasSuffix(": exit code 0\n"))
            let failLog = try await agent.call("GET", "/api2/tasks/\(ids["o.fail"]!)/log.do").json["data"]?["text"]?.stringValue ?? ""
            #expect(failLog.hasSuffix(": exit code 3\n"), "\(failLog)")
        }
    }

    @Test("refused tokens: logged at most once per 10 s with a count, never the token sent")
    func refusedTokens() async throws {
        try await AgentProcess.with(jobs: Self.jobs, agentExtra: "log_format = \"json\"") { agent in
            let wrong = "guess-0123456789-abcdef"
            let began = Date()
            for _ in 0..<40 {
                let answer = try await agent.call("GET", "/api2/agent/status.do", token: wrong).text
                #expect(answer.contains(SeedMessage.authFailed))
            }
            #expect(try await agent.call("GET", "/api2/agent/status.do", token: nil).ret == false)
            let refusals = Self.jsonLines(agent.log).filter { $0["msg"] == .string("request refused: wrong or missing token") }
            // One line per 10 s window at most (the requests may span two windows on a busy machine),
            // each counting the refusals since the previous one.
            let windows = Int(Date().timeIntervalSince(began) / 10) + 1
            #expect(refusals.count >= 1 && refusals.count <= windows, "\(refusals)")
            #expect(refusals.first?["refused_since_last_line"] == .string("1"))
            #expect(refusals.first?["route"] == .string("/api2/agent/status.do"))
            #expect(refusals.first?["token_sent"] == .string("true"))
            #expect(!agent.log.contains(wrong))
            #expect(!agent.log.contains(testToken))
        }
    }

    @Test("GET /metrics: Prometheus text that prometheus_client parses, with task, refusal, HTTP, journal, outbox and build metrics; no token needed unless metrics_token = true")
    func metricsScrape() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"),
              (try? DurabilityTests.shell("/usr/bin/python3 -c 'import prometheus_client'")) == 0 else {
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "python3-prometheus-client is missing: scripts/bootstrap.sh installs it")
            return
        }
        try await AgentProcess.with(jobs: Self.jobs, agentExtra: "kill_grace = 1") { agent in
            for job in ["o.ok", "o.ok", "o.fail", "o.slow"] {
                #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#).ret == true)
            }
            #expect(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"o.nope"}"#).ret == false)
            let running = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"o.kill"}"#).message)
            #expect(await eventually { (try? await agent.call("GET", "/api2/tasks.do?state=finished").json["data"]?["tasks"]?.arrayValue?.count) == 4 })
            let scrape = try await agent.call("GET", "/metrics", token: nil)
            #expect(scrape.status.code == 200)
            let path = agent.dataDir + "/scrape.txt"
            try scrape.text.write(toFile: path, atomically: true, encoding: .utf8)
            // Prometheus's own parser; prints "name{labels} value" per sample, sorted.
            let script = """
                import sys
                from prometheus_client.parser import text_string_to_metric_families
                out = []
                for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                    for s in family.samples:
                        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                        out.append(f"{s.name}{{{labels}}} {s.value} {family.type}")
                print("\\n".join(sorted(out)))
                """
            try script.write(toFile: agent.dataDir + "/parse.py", atomically: true, encoding: .utf8)
            #expect(try DurabilityTests.shell("/usr/bin/python3 \(agent.dataDir)/parse.py \(path) > \(path).parsed 2>&1") == 0)
            let parsed = try String(contentsOfFile: path + ".parsed", encoding: .utf8)
            func value(_ sample: String) -> Double? {
                parsed.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
            }
            #expect(value(#"qagent_tasks_finished_total{job="o.ok",state="succeeded"}"#) == 2, "\(parsed)")
            #expect(value(#"qagent_tasks_finished_total{job="o.fail",state="failed"}"#) == 1)
            #expect(value(#"qagent_tasks_finished_total{job="o.slow",state="timed_out"}"#) == 1)
            #expect(value(#"qagent_task_duration_seconds_count{job="o.ok"}"#) == 2)
            #expect(value(#"qagent_task_duration_seconds_bucket{job="o.slow",le="+Inf"}"#) == 1)
            #expect(value(#"qagent_task_duration_seconds_bucket{job="o.slow",le="0.5"}"#) == 0)
            #expect(value(#"qagent_tasks_running{job="o.kill"}"#) == 1)
            #expect(value(#"qagent_tasks_queued{job="o.kill"}"#) == 0)
            #expect(value(#"qagent_dispatch_refusals_total{reason="job_not_found"}"#) == 1)
            #expect(value(#"qagent_http_requests_total{method="POST",route="/api2/tasks.do",status="200"}"#) == 6)
            #expect((value(#"qagent_journal_commit_seconds_count{}"#) ?? 0) >= 1)
            #expect(value(#"qagent_outbox_depth{}"#) == 0)
            #expect(value(#"qagent_build_info{version="\#(AgentVersion.current)"}"#) == 1)
            #expect(parsed.contains(#"qagent_tasks_finished_total{job="o.ok",state="succeeded"} 2.0 counter"#))
            #expect(scrape.text.contains("# TYPE qagent_task_duration_seconds histogram"))
            // The task ends: its job's gauges go back to 0 (they do not vanish or stay stale).
            #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(running)"}"#).ret == true)
            #expect(await eventually { (try? await agent.call("GET", "/metrics", token: nil).text.contains(#"qagent_tasks_running{job="o.kill"} 0.0"#)) == true })
        }
        try await AgentProcess.with(jobs: Self.jobs, agentExtra: "metrics_token = true") { agent in
            let refused = try await agent.call("GET", "/metrics", token: nil).text
            #expect(refused.contains(SeedMessage.authFailed))
            let served = try await agent.call("GET", "/metrics").text
            #expect(served.contains("qagent_build_info"))
        }
    }
}
