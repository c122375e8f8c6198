import Foundation
import Testing
@testable import QScheduleAgent

/// A deferred task in the real `qagent-example` binary: running until gzip's termination
/// handler completes it, stopped by kill.do, settled per `recover` after a crash.
@Suite("End to end: deferred completion (example.compress)", .serialized)
struct DeferredCompletionEndToEndTests {
    static let jobs = """
        [[job]]
        name = "example.compress"
        timeout = 120
        overlap = "concurrent"
        max_concurrency = 2
        recover = "retry"

        """

    /// A file of random bytes that gzip takes a while over.
    private static func bigFile(in directory: String, megabytes: Int = 48) throws -> String {
        let path = directory + "/big-\(UUID().uuidString.prefix(6)).bin"
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? random.close() }
        #expect(FileManager.default.createFile(atPath: path, contents: random.readData(ofLength: megabytes << 20)))
        return path
    }

    /// Whether a gzip process is working on `path`.
    private static func gzipRunning(on path: String) -> Bool {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.contains { pid in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.first?.hasSuffix("gzip") == true && arguments.last == path
        }
    }

    private func start(dataDir: String? = nil) async throws -> AgentProcess {
        try await AgentProcess.start(jobs: Self.jobs, dataDir: dataDir, agentExtra: "kill_grace = 1", executable: "qagent-example")
    }

    /// A sparse file of zeros that gzip takes a minute over (about 150 MB/s here), written at
    /// once: the task is certainly still pending when the test looks.
    private static func slowFile(in directory: String) throws -> String {
        let path = directory + "/sparse-\(UUID().uuidString.prefix(6)).bin"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 8 << 30)
        try handle.close()
        return path
    }

    /// Stops every gzip still working on `path` (one the agent no longer knows about).
    private static func stopGzip(on path: String) {
        _ = try? DurabilityTests.shell("pkill -KILL -f -- '--force \(path)$' || true")
    }

    /// Dispatches `example.compress` of `path`; the task id.
    private static func compress(_ path: String, on agent: AgentProcess) async throws -> String {
        let reply = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"example.compress","param":{"path":"\#(path)"}}"#)
        return try #require(reply.message, "\(reply.text)")
    }

    @Test("completed by gzip's exit (200), not when the handler returned")
    func completes() async throws {
        let agent = try await start()
        defer { agent.killNow() }
        let path = try Self.bigFile(in: agent.dataDir)
        let id = try await Self.compress(path, on: agent)
        #expect(try await eventually(seconds: 60) { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(200) })
        let info = try #require(try await agent.call("GET", "/api2/tasks/\(id).do").data)
        // The handler returns within milliseconds of starting gzip; gzip takes about a second
        // over 48 MB of random bytes. A task ended at the handler's return would show the former.
        #expect((info["duration"]?.intValue ?? 0) > 100, "\(info)")
        let size = (try? FileManager.default.attributesOfItem(atPath: path + ".gz")[.size] as? Int) ?? 0
        #expect(size > 40 << 20, "\(path).gz: \(size) bytes")
        #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data == .array([]))
    }

    @Test("pending: /api/check lists it and task info says running; kill.do records 499 and terminates gzip")
    func pendingThenKilled() async throws {
        let agent = try await start()
        defer { agent.killNow() }
        let path = try Self.slowFile(in: agent.dataDir)
        defer { Self.stopGzip(on: path) }
        let id = try await Self.compress(path, on: agent)
        // gzip runs: the handler has started it, deferred and returned.
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) })
        let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil)
        #expect(busy.data?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["example.compress"], "\(busy.text)")
        let running = try await agent.call("GET", "/api2/tasks/\(id).do")
        #expect(running.data?["state"] == .string("running"), "\(running.text)")

        #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).ret == true)
        #expect(try await eventually(seconds: 15) { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(499) })
        #expect(await eventually(seconds: 10) { !Self.gzipRunning(on: path) }, "gzip still runs after the kill")
        try await Task.sleep(for: .milliseconds(300))
        let info = try #require(try await agent.call("GET", "/api2/tasks/\(id).do").data)
        #expect(info["lastState"] == .int(499) && info["state"] == .string("finished"), "\(info)")
        #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data == .array([]))
    }

    @Test("kill -9 while pending: after restart the task is settled per recover (retry: attempt 2 runs, pending again)")
    func crash() async throws {
        let first = try await start()
        defer { first.killNow() }
        let path = try Self.slowFile(in: first.dataDir)
        defer { Self.stopGzip(on: path) }
        let id = try await Self.compress(path, on: first)
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) })
        first.killNow()
        _ = try await first.stop(signal: 0)
        // A process a Swift handler starts is the handler's own: the agent does not track it,
        // and this one outlives the crash. Stopped here, as the handler's owner would.
        Self.stopGzip(on: path)
        #expect(await eventually(seconds: 10) { !Self.gzipRunning(on: path) })

        let second = try await start(dataDir: first.dataDir)
        defer { second.killNow() }
        #expect(try await eventually(seconds: 30) {
            let info = try await second.call("GET", "/api2/tasks/\(id).do").data
            return info?["attempt"] == .int(2) && info?["state"] == .string("running")
        })
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) }, "attempt 2 did not start gzip")
        #expect(try await second.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).ret == true)
        #expect(try await eventually(seconds: 15) { try await second.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(499) })
    }
}
