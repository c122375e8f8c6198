import Foundation
import Synchronization
import Testing
@testable import QScheduleAgent

/// The execution engine (DESIGN §3) with real child processes and real signals.
@Suite("Execution")
struct ExecutionTests {
    /// Whether `pid` is alive (a zombie counts as dead).
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// A job script that starts three grandchildren, each writing its pid to `$DATA_DIR/<name>.pid`:
    /// one ignoring SIGTERM, one double-forked into the background, one that leaves the process
    /// group with setsid. Then it waits.
    static let forker = """
        #!/bin/sh
        d="$1"
        sh -c 'trap "" TERM; echo $$ > "$0/ignore.pid"; while :; do sleep 1; done' "$d" &
        sh -c 'sh -c "echo \\$\\$ > \\"$0/orphan.pid\\"; exec sleep 1000" "$0" & exit 0' "$d" &
        setsid sh -c 'echo $$ > "$0/setsid.pid"; exec sleep 1000' "$d" &
        trap "" TERM
        while :; do sleep 1; done
        """

    static func forkerJobs(dir: String) throws -> String {
        let script = dir + "/forker.sh"
        try forker.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return """
            [[job]]
            name = "x.forker"
            command = ["\(script)", "$DATA_DIR"]
            timeout = 6

            [[job]]
            name = "x.forker.notimeout"
            command = ["\(script)", "$DATA_DIR"]

            """
    }

    static func pids(in dir: String) -> [String: Int32] {
        var result: [String: Int32] = [:]
        for name in ["ignore", "orphan", "setsid"] {
            if let text = try? String(contentsOfFile: "\(dir)/\(name).pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                result[name] = pid
            }
        }
        return result
    }

    @Test("timeout: recorded 504, and no descendant survives (TERM-ignoring, double-forked, setsid)")
    func timeoutKillsEverything() async throws {
        let scripts = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scripts) }
        try await InProcessAgent.with(jobs: try Self.forkerJobs(dir: scripts), agentExtra: "kill_grace = 1") { agent in
            let dir = agent.agent.config.agent.dataDir
            let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"x.forker"}"#).message)
            #expect(await eventually { Self.pids(in: dir).count == 3 })
            let pids = Self.pids(in: dir)
            #expect(pids.values.allSatisfy(Self.isAlive))
            #expect(try await eventually(seconds: 15) { try agent.agent.store.task(id)?.status == .finished })
            let task = try #require(try agent.agent.store.task(id))
            #expect(task.result == .timedOut)
            #expect(task.message == "timed out after 6s")
            #expect(await eventually(seconds: 5) { pids.values.allSatisfy { !Self.isAlive($0) } }, "survivors: \(pids.filter { Self.isAlive($0.value) })")
            #expect(try await agent.call(.get, "/api2/jobs/x.forker.do").data?["lastState"] == .int(504))
        }
    }

    @Test("kill on request: recorded 499, no descendant survives; kill answers for unknown and finished tasks")
    func killOnRequest() async throws {
        let scripts = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scripts) }
        try await InProcessAgent.with(jobs: try Self.forkerJobs(dir: scripts), agentExtra: "kill_grace = 1") { agent in
            let dir = agent.agent.config.agent.dataDir
            let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"x.forker.notimeout"}"#).message)
            #expect(await eventually { Self.pids(in: dir).count == 3 })
            let pids = Self.pids(in: dir)
            // The pid is journaled without holding up the start: it shows up a moment later.
            #expect(try await eventually { try await agent.call(.get, "/api2/tasks/\(id).do").data?["pid"]?.intValue != nil })
            #expect(try await agent.call(.get, "/api2/tasks/\(id).do").data?["state"] == .string("running"))

            let kill = try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"\#(id)"}"#)
            #expect(kill.text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await eventually(seconds: 10) { try agent.agent.store.task(id)?.status == .finished })
            #expect(try agent.agent.store.task(id)?.result == .killed)
            #expect(await eventually(seconds: 5) { pids.values.allSatisfy { !Self.isAlive($0) } }, "survivors: \(pids.filter { Self.isAlive($0.value) })")

            let again = try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"\#(id)"}"#)
            #expect(again.text == #"{"message":"操作失败","reason":"task_finished","ret":false}"#)
            let unknown = try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"nope"}"#)
            #expect(unknown.reason == "task_not_found")
            for body in [nil, "{}", #"{"taskId":5}"#, #"{"taskId":"a b"}"#] as [String?] {
                #expect(try await agent.call(.post, "/api2/tasks/kill.do", body: body).text == #"{"message":"参数错误","ret":false}"#)
            }
            #expect(try await agent.call(.post, "/api2/tasks/kill.do", token: "bad", body: #"{"taskId":"\#(id)"}"#).message == "授权失败")
        }
    }

    static let policyJobs = """
        [[job]]
        name = "p.concurrent"
        command = ["/bin/sleep", "30"]
        overlap = "concurrent"
        max_concurrency = 2
        max_queued = 1

        [[job]]
        name = "p.cover"
        command = ["/bin/sleep", "30"]
        overlap = "cover"

        [[job]]
        name = "p.serial"
        command = ["/bin/sleep", "30"]
        overlap = "serial"
        max_queued = 2

        """

    @Test("overlap: concurrent runs up to max_concurrency then queues, bounded; a queued task can be killed")
    func concurrentPolicy() async throws {
        try await InProcessAgent.with(jobs: Self.policyJobs) { agent in
            var ids: [String] = []
            for _ in 0..<3 { ids.append(try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"p.concurrent"}"#).message)) }
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"p.concurrent"}"#).reason == "overloaded")
            let active = try #require(await agent.agent.runner.activeJobs().first)
            #expect(active.running == 2)
            #expect(active.queued == 1)
            #expect(try await agent.call(.get, "/api2/tasks/\(ids[2]).do").data?["state"] == .string("queued"))
            #expect(try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"\#(ids[2])"}"#).ret == true)
            let dropped = try #require(try agent.agent.store.task(ids[2]))
            #expect(dropped.result == .killed)
            #expect(dropped.pid == nil)
        }
    }

    @Test("overlap: cover stops the running task (499, covered) and starts the new one")
    func coverPolicy() async throws {
        try await InProcessAgent.with(jobs: Self.policyJobs, agentExtra: "kill_grace = 1") { agent in
            let first = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"p.cover"}"#).message)
            #expect(try await eventually { try agent.agent.store.task(first)?.pid != nil })
            let second = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"p.cover"}"#).message)
            #expect(try await eventually(seconds: 10) { try agent.agent.store.task(first)?.status == .finished })
            let covered = try #require(try agent.agent.store.task(first))
            #expect(covered.result == .killed)
            #expect(covered.message == "cancelled: covered by task \(second)")
            #expect(try await eventually(seconds: 10) { try agent.agent.store.task(second)?.status == .running })
        }
    }

    @Test("Swift handlers: typed params, param errors naming the key, task logger, progress, cooperative timeout")
    func swiftHandlers() async throws {
        struct Export: TypedJobHandler {
            struct Param: Decodable, Sendable {
                var table: String
                var rows: Int
            }
            func run(_ param: Param, context: TaskContext) async throws {
                context.logger.info("exporting", metadata: ["table": "\(param.table)"])
                context.progress(0.5, "half way")
                try await Task.sleep(for: .milliseconds(param.rows))
            }
        }
        var handlers = HandlerRegistry()
        handlers.register("s.export", Export())
        handlers.register("s.getters") { context in
            let name = try context.string("name")
            let count = try context.int("count")
            let verbose = try context.optionalBool("verbose") ?? false
            context.log.write("name=\(name) count=\(count) verbose=\(verbose)")
        }
        handlers.register("s.cooperative") { _ in try await Task.sleep(for: .seconds(60)) }
        let jobs = """
            [[job]]
            name = "s.export"
            [[job]]
            name = "s.getters"
            [[job]]
            name = "s.cooperative"
            timeout = 1

            """
        try await InProcessAgent.with(jobs: jobs, handlers: handlers) { agent in
            let export = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.export","param":{"table":"orders","rows":1500}}"#).message)
            #expect(try await eventually { try await agent.call(.get, "/api2/tasks/\(export).do").data?["progress"]?["fraction"] == .double(0.5) })
            #expect(try await agent.call(.get, "/api2/tasks/\(export).do").data?["progress"]?["message"] == .string("half way"))
            #expect(try await eventually { try agent.agent.store.task(export)?.result == .succeeded })
            let log = try #require(try await agent.call(.get, "/api2/tasks/\(export)/log.do").data?["text"]?.stringValue)
            #expect(log.contains("info exporting table=orders"), "\(log)")

            let bad = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.export","param":{"table":"orders","rows":"many"}}"#).message)
            #expect(try await eventually { try agent.agent.store.task(bad)?.status == .finished })
            #expect(try agent.agent.store.task(bad)?.result == .failed)
            #expect(try agent.agent.store.task(bad)?.message.hasPrefix(#"param "rows" must be"#) == true)

            let missing = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.getters","param":{"name":"x"}}"#).message)
            #expect(try await eventually { try agent.agent.store.task(missing)?.status == .finished })
            #expect(try agent.agent.store.task(missing)?.message == #"param "count" is required"#)
            let good = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.getters","param":{"name":"x","count":3}}"#).message)
            #expect(try await eventually { try agent.agent.store.task(good)?.result == .succeeded })
            #expect(taskOutput(try await agent.call(.get, "/api2/tasks/\(good)/log.do").data?["text"]?.stringValue) == "name=x count=3 verbose=false\n")

            let started = Date()
            let slow = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.cooperative"}"#).message)
            #expect(try await eventually { try agent.agent.store.task(slow)?.status == .finished })
            #expect(try agent.agent.store.task(slow)?.result == .timedOut)
            #expect(Date().timeIntervalSince(started) < 30, "a cooperative handler stops at the timeout, long before its 60 s sleep")
        }
    }

    @Test("a thrown error is recorded with what it says: LocalizedError's description, a CustomStringConvertible's, else its qualified type and case (task info, log closing line)")
    func thrownErrors() async throws {
        var handlers = HandlerRegistry()
        handlers.register("s.localized") { _ in throw BucketFull() }
        handlers.register("s.described") { _ in throw QuotaExceeded(table: "orders") }
        handlers.register("s.enum") { _ in throw ExportFailure.tableMissing("orders") }
        handlers.register("s.struct") { _ in throw PlainFailure(code: 3) }
        let jobs = ["s.localized", "s.described", "s.enum", "s.struct"].map { "[[job]]\nname = \"\($0)\"\n" }.joined()
        let expected = [
            "s.localized": "the export bucket is full",
            "s.described": "quota exceeded for orders",
            "s.enum": #"QScheduleAgentTests.ExportFailure.tableMissing("orders")"#,
            "s.struct": "QScheduleAgentTests.PlainFailure(code: 3)",
        ]
        try await InProcessAgent.with(jobs: jobs, handlers: handlers) { agent in
            for (job, message) in expected.sorted(by: { $0.key < $1.key }) {
                let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)"}"#).message)
                #expect(try await eventually { try agent.agent.store.task(id)?.status == .finished })
                let info = try await agent.call(.get, "/api2/tasks/\(id).do")
                #expect(info.data?["state"] == .string("finished") && info.data?["lastState"] == .int(500), "\(info.text)")
                #expect(info.data?["message"]?.stringValue == message, "\(job): \(info.text)")
                let log = try await agent.call(.get, "/api2/tasks/\(id)/log.do").data?["text"]?.stringValue
                #expect(closingLine(log)?.hasSuffix(" ms: \(message)") == true, "\(job): \(log ?? "")")
            }
        }
    }

    @Test("a Swift handler that ignores cancellation is recorded 504 after deadline + grace, while it still runs; its late result is discarded")
    func uncooperativeHandler() async throws {
        let returned = Flag()
        var handlers = HandlerRegistry()
        handlers.register("s.stubborn") { _ in
            // Ignores cancellation: waits on work that does not inherit it (a detached task)
            // and never checks. (It does not block a thread: see the DocC guide.)
            await Task.detached { try? await Task.sleep(for: .seconds(8)) }.value
            returned.set()
        }
        let jobs = "[[job]]\nname = \"s.stubborn\"\ntimeout = 1\n"
        try await InProcessAgent.with(jobs: jobs, agentExtra: "kill_grace = 1", handlers: handlers) { agent in
            let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"s.stubborn"}"#).message)
            #expect(try await eventually(seconds: 20) { try agent.agent.store.task(id)?.status == .finished })
            let task = try #require(try agent.agent.store.task(id))
            #expect(!returned.isSet, "recorded only after the handler returned")
            #expect(task.result == .timedOut)
            #expect(task.message == "timed out after 1s; the handler did not stop within the grace period, its late result is discarded")
            #expect(task.duration.map { $0 >= 2000 } == true, "recorded before deadline + grace: \(task.duration ?? -1) ms")
            // The runner forgets the task just after its completion commits: waited for.
            #expect(await eventually { await agent.agent.runner.activeJobs().isEmpty })
            #expect(!returned.isSet, "the host looked idle only after the handler returned")
            #expect(await eventually(seconds: 20) { returned.isSet })
            try await Task.sleep(for: .milliseconds(200))
            #expect(try agent.agent.store.task(id)?.result == .timedOut)
            #expect(try agent.agent.store.task(id)?.message == task.message)
        }
    }
}

/// A one-way boolean shared with a handler.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// `/proc/<pid>/stat` as the agent reads it to recognise its commands' processes after a crash.
@Suite("Process entries")
struct ProcStatTests {
    @Test("a process whose name holds spaces and parentheses: state, parent, group and start time as ps reports them; a missing pid is nil")
    func awkwardName() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        // PR_SET_NAME (15): comm becomes "x) 1 2 (y", which a naive split would misread.
        process.arguments = ["-c", "import ctypes, os, time\nos.setpgid(0, 0)\nctypes.CDLL(None).prctl(15, b'x) 1 2 (y', 0, 0, 0)\ntime.sleep(30)"]
        try process.run()
        let pid = process.processIdentifier
        // SIGKILL: the test runner's ignored SIGTERM is inherited.
        defer { kill(pid, SIGKILL); process.waitUntilExit() }
        #expect(await eventually { (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) == "x) 1 2 (y\n" })
        let entry = try #require(ProcStat(pid: pid))
        // ps reads the same entry: compare with its fields.
        let ps = Process()
        ps.executableURL = URL(fileURLWithPath: "/bin/ps")
        ps.arguments = ["-o", "stat=,ppid=,pgid=", "-p", "\(pid)"]
        let pipe = Pipe()
        ps.standardOutput = pipe
        try ps.run()
        ps.waitUntilExit()
        let fields = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
        #expect(fields.count == 3)
        #expect(fields.first?.first == entry.state)
        #expect(Int32(fields.dropFirst().first ?? "") == entry.parentPID)
        #expect(entry.parentPID == getpid())
        #expect(entry.processGroup == pid)
        // Field 22, counted from the start of the line in /proc itself.
        let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let afterName = text[text.index(after: try #require(text.lastIndex(of: ")")))...].split(separator: " ")
        #expect(Int64(afterName[19]) == entry.startTicks)
        #expect(entry.startTicks > 0)
        #expect(ProcStat(pid: Int32.max) == nil)
        #expect(ProcStat.all().contains { $0.pid == pid && $0.startTicks == entry.startTicks })
    }

    @Test("malformed entries are refused, not misread")
    func malformed() {
        func parse(_ text: String) -> ProcStat? {
            Array(text.utf8).withUnsafeBufferPointer { ProcStat(pid: 7, entry: $0) }
        }
        // Fields 6 to 52, each holding its own number: the start time (field 22) reads 22.
        let fields = (6...52).map(String.init).joined(separator: " ")
        #expect(parse("7 (ok) S 1 7 " + fields)?.startTicks == 22)
        #expect(parse("7 (ok) S 1 7 " + fields)?.processGroup == 7)
        #expect(parse("7 no name S 1 7 " + fields) == nil)
        #expect(parse("7 (short) S 1 7 4 5") == nil)
        #expect(parse("7 (bad) S x 7 " + fields) == nil)
        #expect(parse("7 (neg) S -1 7 " + fields) == nil)
        #expect(parse("7 (big) S 99999999999 7 " + fields) == nil)
    }
}

/// Errors thrown by the handlers of ``ExecutionTests/thrownErrors()``.
private struct BucketFull: LocalizedError {
    var errorDescription: String? { "the export bucket is full" }
}

private struct QuotaExceeded: Error, CustomStringConvertible {
    var table: String
    var description: String { "quota exceeded for \(table)" }
}

enum ExportFailure: Error {
    case tableMissing(String)
}

struct PlainFailure: Error {
    var code: Int
}
