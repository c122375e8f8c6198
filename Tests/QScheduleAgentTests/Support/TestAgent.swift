import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
@testable import QScheduleAgent

/// A fresh temporary folder, removed by the caller with `removeItem`.
func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

let testToken = "test-token-0000001"

/// The `[agent]` table used by in-process tests; `extra` adds lines to it.
func agentTOML(dataDir: String, extra: String = "") -> String {
    """
    [agent]
    app_name = "qschedule.test"
    app_id = 7
    listen = "127.0.0.1:0"
    advertise_ip = "127.0.0.1"
    data_dir = "\(dataDir)"
    token = ["\(testToken)", "test-token-0000002"]
    \(extra)

    """
}

/// A decoded answer of the agent.
struct Reply: Sendable {
    var status: HTTPResponse.Status
    var json: JSONValue
    var text: String

    var ret: Bool? { json.objectValue?["ret"]?.boolValue }
    var message: String? { json.objectValue?["message"]?.stringValue }
    var reason: String? { json.objectValue?["reason"]?.stringValue }
    var data: JSONValue? { json.objectValue?["data"] }
}

/// An in-process agent: the real store, runner and responder, driven without sockets
/// through HummingbirdTesting's router framework.
struct InProcessAgent: Sendable {
    let agent: Agent
    let client: any TestClientProtocol

    /// Sends a request; `token: nil` omits the header.
    func call(_ method: HTTPRequest.Method, _ path: String, token: String? = testToken, body: String? = nil) async throws -> Reply {
        var headers = HTTPFields()
        if let token { headers[HTTPField.Name("Q-Server-Token")!] = token }
        let response = try await client.execute(
            uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        let text = String(buffer: response.body)
        return Reply(status: response.status, json: JSONValue(parsing: text) ?? .null, text: text)
    }

    /// Runs `body` against an agent built from `jobs` TOML (plus the standard `[agent]`);
    /// `$DATA_DIR` in `jobs` is replaced by the agent's temporary data folder.
    static func with<Value: Sendable>(
        jobs: String,
        agentExtra: String = "",
        handlers: HandlerRegistry = HandlerRegistry(),
        prepare: (String) async throws -> Void = { _ in },
        _ body: @Sendable (InProcessAgent) async throws -> Value
    ) async throws -> Value {
        let dir = try makeTemporaryDirectory()
        try await prepare(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ConfigLoader.parse(agentTOML(dataDir: dir, extra: agentExtra) + jobs.replacingOccurrences(of: "$DATA_DIR", with: dir), baseDirectory: dir)
        let agent = try Agent(config: config, handlers: handlers, logger: testLogger())
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                try await agent.runner.run()
                return nil
            }
            if let reporter = agent.reporter {
                group.addTask {
                    try await reporter.run()
                    return nil
                }
            }
            if let scheduler = agent.scheduler {
                group.addTask {
                    try await scheduler.run()
                    return nil
                }
            }
            let result: Result<Value, any Error>
            do {
                result = .success(try await agent.makeApplication().test(.router) { client in
                    try await body(InProcessAgent(agent: agent, client: client))
                })
            } catch {
                result = .failure(error)
            }
            // Stop what still runs the way a shutdown does (process groups TERM, grace, KILL),
            // so no test leaves processes behind.
            await agent.runner.stopAllForShutdown()
            group.cancelAll()
            while try await group.next() != nil {}
            return try result.get()
        }
    }
}

/// Polls `condition` every 20 ms, up to `seconds`; returns whether it became true.
///
/// The deadline only guards against a hang: a passing condition returns at once. It is
/// generous because the suite's end-to-end tests (crash loops, PostgreSQL servers, agent
/// processes) share two cores and one disk, where a journal commit can stall for seconds.
func eventually(seconds: Double = 30, _ condition: @Sendable () async throws -> Bool) async rethrows -> Bool {
    let start = Date()
    let deadline = start.addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        // Every 20 ms for the first second, then every 100 ms: many conditions run psql or
        // read files synchronously, and polling them every 20 ms for minutes kept the
        // 2-thread cooperative pool of the test process mostly blocked, starving the
        // in-process agents and fakes of other tests running beside them.
        try? await Task.sleep(for: .milliseconds(Date().timeIntervalSince(start) < 1 ? 20 : 100))
    }
    return try await condition()
}

