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

    @Test("pending after the handler returned: /api/check lists it and task info says running; gzip's exit completes it (200)")
    func completes() async throws {
        let agent = try await start()
        defer { agent.killNow() }
        let path = try Self.bigFile(in: agent.dataDir)
        let id = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"example.compress","param":{"path":"\#(path)"}}"#).message)
        // gzip runs: the handler has started, deferred and returned.
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) })
        let busy = try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil)
        #expect(busy.data?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["example.compress"], "\(busy.text)")
        #expect(try await agent.call("GET", "/api2/tasks/\(id).do").data?["state"] == .string("running"))
        #expect(try await eventually(seconds: 60) { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(200) })
        #expect(FileManager.default.fileExists(atPath: path + ".gz"))
        #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data == .array([]))
    }

    @Test("kill.do while pending: 499, gzip is terminated, its late exit changes nothing")
    func killed() async throws {
        let agent = try await start()
        defer { agent.killNow() }
        let path = try Self.bigFile(in: agent.dataDir)
        let id = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"example.compress","param":{"path":"\#(path)"}}"#).message)
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) })
        #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).ret == true)
        #expect(try await eventually(seconds: 15) { try await agent.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(499) })
        #expect(await eventually(seconds: 10) { !Self.gzipRunning(on: path) }, "gzip still runs after the kill")
        try await Task.sleep(for: .milliseconds(500))
        let info = try #require(try await agent.call("GET", "/api2/tasks/\(id).do").data)
        #expect(info["lastState"] == .int(499) && info["state"] == .string("finished"), "\(info)")
    }

    @Test("kill -9 while pending: after restart the task is settled per recover (retry: attempt 2 runs and completes)")
    func crash() async throws {
        let first = try await start()
        defer { first.killNow() }
        let path = try Self.bigFile(in: first.dataDir)
        let id = try #require(try await first.call("POST", "/api2/tasks.do", json: #"{"job":"example.compress","param":{"path":"\#(path)"}}"#).message)
        #expect(await eventually(seconds: 10) { Self.gzipRunning(on: path) })
        first.killNow()
        _ = try await first.stop(signal: 0)
        let second = try await start(dataDir: first.dataDir)
        defer { second.killNow() }
        #expect(try await eventually(seconds: 90) { try await second.call("GET", "/api2/tasks/\(id).do").data?["lastState"] == .int(200) })
        let info = try #require(try await second.call("GET", "/api2/tasks/\(id).do").data)
        #expect(info["attempt"] == .int(2), "\(info)")
    }
}
