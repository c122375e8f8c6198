import Foundation
import Testing
@testable import QScheduleAgent

/// Handlers that misbehave: each ends in a clear 500 (or its normal result), never a hang
/// or a crash of the agent, and the agent's memory stays flat.
@Suite("Hostile handlers")
struct HostileHandlerTests {
    static func residentKiB(pid: Int32? = nil) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid.map { "\($0)" } ?? "self")/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    static func jobs(scratch: String) throws -> String {
        try "not a program".write(toFile: scratch + "/plain.txt", atomically: true, encoding: .utf8)
        return """
            [[job]]
            name = "h.missing"
            command = ["/nonexistent/bin/tool"]

            [[job]]
            name = "h.notexec"
            command = ["\(scratch)/plain.txt"]

            [[job]]
            name = "h.directory"
            command = ["\(scratch)"]

            [[job]]
            name = "h.badutf8"
            command = ["/bin/sh", "-c", "printf 'ok \\\\377\\\\376 bytes\\\\n'"]

            [[job]]
            name = "h.flood"
            command = ["/bin/sh", "-c", "head -c 1073741824 /dev/zero"]

            [[job]]
            name = "h.closes"
            command = ["/bin/sh", "-c", "echo before; exec 1>&- 2>&-; sleep 0.3; exit 0"]

            [[job]]
            name = "h.ignores-stdin"
            command = ["/bin/sh", "-c", "exit 0"]

            """
    }

    @Test("a missing program, a non-executable file and a directory each end in a clear 500")
    func cannotStart() async throws {
        let scratch = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await InProcessAgent.with(jobs: try Self.jobs(scratch: scratch)) { agent in
            for job in ["h.missing", "h.notexec", "h.directory"] {
                let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)"}"#).message)
                #expect(try await eventually { try agent.agent.store.task(id)?.status == .finished })
                let task = try #require(try agent.agent.store.task(id))
                #expect(task.result == .failed)
                #expect(task.message.hasPrefix("cannot start "), "\(job): \(task.message)")
            }
            #expect(try await agent.call(.get, "/healthz", token: nil).status == .ok)
        }
    }

    @Test("invalid UTF-8 output is kept as bytes and served as text; a child closing stdout early still finishes; a large param a child never reads does not block")
    func oddOutput() async throws {
        let scratch = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await InProcessAgent.with(jobs: try Self.jobs(scratch: scratch)) { agent in
            let bad = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"h.badutf8"}"#).message)
            #expect(try await eventually { try agent.agent.store.task(bad)?.result == .succeeded })
            let raw = try Data(contentsOf: URL(fileURLWithPath: agent.agent.config.agent.dataDir + "/logs/\(bad).log"))
            let output = Data("ok ".utf8) + Data([0xFF, 0xFE]) + Data(" bytes\n".utf8)
            #expect(raw.prefix(output.count) == output)
            #expect(String(decoding: raw.dropFirst(output.count), as: UTF8.self).hasPrefix("[qagent] task finished (200) after "))
            let text = try await agent.call(.get, "/api2/tasks/\(bad)/log.do").data?["text"]?.stringValue
            #expect(taskOutput(text) == "ok \u{FFFD}\u{FFFD} bytes\n")

            let closes = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"h.closes"}"#).message)
            #expect(try await eventually { try agent.agent.store.task(closes)?.result == .succeeded })
            #expect(taskOutput(try await agent.call(.get, "/api2/tasks/\(closes)/log.do").data?["text"]?.stringValue) == "before\n")

            let big = String(repeating: "x", count: 500_000)
            let ignored = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"h.ignores-stdin","param":{"blob":"\#(big)"}}"#).message)
            #expect(try await eventually { try agent.agent.store.task(ignored)?.result == .succeeded })
        }
    }

    @Test("1 GB of output: the log is capped with a marker, the task succeeds, the agent's RSS stays flat")
    func flood() async throws {
        let scratch = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // The real binary, so its RSS is its own (the test process runs other suites meanwhile).
        try await AgentProcess.with(jobs: try Self.jobs(scratch: scratch), agentExtra: "max_log_bytes = 1048576") { agent in
            let pid = agent.process.processIdentifier
            let before = Self.residentKiB(pid: pid)
            let id = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"h.flood"}"#).message)
            #expect(try await eventually(seconds: 120) { try await agent.call("GET", "/api2/tasks/\(id).do").data?["state"] == .string("finished") })
            let after = Self.residentKiB(pid: pid)
            print("agent RSS before \(before) KiB, after 1 GiB of child output \(after) KiB")
            #expect(try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(200))
            #expect(after - before < 64 * 1024, "RSS grew from \(before) KiB to \(after) KiB")
            let path = agent.dataDir + "/logs/\(id).log"
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            // The cap, the marker, then the closing line, which is written past the cap.
            let marker = TaskLog.truncationMarker(1_048_576)
            let handle = try #require(FileHandle(forReadingAtPath: path))
            try handle.seek(toOffset: UInt64(1_048_576))
            let tail = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
            #expect(tail.hasPrefix(marker), "\(tail)")
            let closing = String(tail.dropFirst(marker.count))
            #expect(closing.hasPrefix("[qagent] task finished (200) after ") && closing.hasSuffix(": exit code 0\n"), "\(closing)")
            #expect(size == 1_048_576 + marker.utf8.count + closing.utf8.count)
        }
    }

    @Test("log.do serves bounded chunks by offset; 参数错误 for a bad id or offset; task不存在")
    func logChunks() async throws {
        let jobs = """
            [[job]]
            name = "h.lines"
            command = ["/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"]

            """
        try await InProcessAgent.with(jobs: jobs) { agent in
            let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"h.lines"}"#).message)
            #expect(try await eventually(seconds: 30) { try agent.agent.store.task(id)?.status == .finished })
            var offset: Int64 = 0
            var text = ""
            var calls = 0
            while true {
                let chunk = try #require(try await agent.call(.get, "/api2/tasks/\(id)/log.do?offset=\(offset)").data)
                let piece = try #require(chunk["text"]?.stringValue)
                #expect(piece.utf8.count <= 64 * 1024)
                text += piece
                calls += 1
                let next = try #require(chunk["nextOffset"]?.intValue)
                if chunk["complete"] == .bool(true) { break }
                #expect(next > offset)
                offset = next
            }
            #expect(calls > 1)
            #expect(taskOutput(text) == (0..<20000).map { "line-\($0)\n" }.joined())
            for path in ["/api2/tasks/\(id)/log.do?offset=-1", "/api2/tasks/\(id)/log.do?offset=x", "/api2/tasks/a%20b/log.do"] {
                #expect(try await agent.call(.get, path).text == #"{"message":"参数错误","ret":false}"#, "\(path)")
            }
            #expect(try await agent.call(.get, "/api2/tasks/nope/log.do").text == #"{"message":"task不存在","reason":"task_not_found","ret":false}"#)
            #expect(try await agent.call(.get, "/api2/tasks/nope.do").message == "task不存在")
            #expect(try await agent.call(.get, "/api2/tasks/\(id)/log.do?offset=999999999").data?["text"] == .string(""))
            let info = try #require(try await agent.call(.get, "/api2/tasks/\(id).do").data)
            #expect(info["state"] == .string("finished"))
            #expect(info["lastState"] == .int(200))
            #expect(info["exitCode"] == .int(0))
            #expect(info["job"] == .string("h.lines"))
        }
    }

    @Test("per-job cwd, env and user reach the child")
    func cwdEnvUser() async throws {
        let scratch = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        chmod(scratch, 0o777)
        let runsAsRoot = geteuid() == 0
        let jobs = """
            [[job]]
            name = "h.where"
            command = ["/bin/sh", "-c", "pwd; echo \\"$GREETING $QSCHEDULE_JOB\\"; id -u"]
            cwd = "\(scratch)"
            env = { GREETING = "hello" }
            \(runsAsRoot ? #"user = "nobody""# : "")

            """
        try await InProcessAgent.with(jobs: jobs) { agent in
            let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"h.where"}"#).message)
            #expect(try await eventually { try agent.agent.store.task(id)?.status == .finished })
            let text = try #require(try await agent.call(.get, "/api2/tasks/\(id)/log.do").data?["text"]?.stringValue)
            let uid = runsAsRoot ? UserAccount.lookup("nobody")!.uid : geteuid()
            let message = try agent.agent.store.task(id)?.message ?? ""
            #expect(taskOutput(text) == "\(scratch)\nhello h.where\n\(uid)\n", "\(message)")
        }
    }

    @Test("cwd, env and user are checked at start")
    func cwdEnvUserErrors() {
        let base = "[agent]\ntoken = \"0123456789abcdef\"\n[[job]]\nname = \"j\"\ncommand = [\"/bin/true\"]\n"
        func error(_ extra: String) -> String {
            do { _ = try ConfigLoader.parse(base + extra); return "no error" } catch { return "\(error)" }
        }
        #expect(error("cwd = \"/no/such/dir\"\n").hasPrefix("agent.conf:6: [[job]] \"j\" cwd: \"/no/such/dir\" is not a directory"))
        #expect(error("env = \"A=1\"\n").hasPrefix("agent.conf:6: [[job]] \"j\" env: must be a table"))
        #expect(error("env = { QSCHEDULE_JOB = \"x\" }\n").contains("is not a name a job may set"))
        #expect(error("user = \"no-such-user-qagent\"\n").hasPrefix("agent.conf:6: [[job]] \"j\" user: no such user"))
    }

    @Test("finished tasks and their logs are pruned after the retention period; recent and unfinished ones stay")
    func retention() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AgentStore(dataDirectory: dir)
        try FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
        let now = Date()
        let day: Int64 = 86_400_000
        for (id, endedDaysAgo, finished) in [("old", 8, true), ("recent", 6, true), ("running", 30, false)] {
            let start = now.epochMilliseconds - Int64(endedDaysAgo) * day
            try await store.insertTask(TaskRecord(id: id, job: "j", param: "{}", trigger: .dispatch, acceptedAt: start))
            if finished {
                try await store.finishTask(TaskCompletion(taskID: id, job: "j", result: .succeeded, startTime: start, endTime: start, message: ""))
            }
            #expect(FileManager.default.createFile(atPath: dir + "/logs/\(id).log", contents: Data("x".utf8)))
        }
        let pruner = TaskPruner(store: store, dataDirectory: dir, retentionDays: 7, logger: .init(label: "test"))
        #expect(await pruner.pruneOnce(now: now) == 1)
        #expect(try store.task("old") == nil)
        #expect(!FileManager.default.fileExists(atPath: dir + "/logs/old.log"))
        #expect(try store.task("recent") != nil)
        #expect(try store.task("running") != nil)
        #expect(FileManager.default.fileExists(atPath: dir + "/logs/running.log"))
    }
}
