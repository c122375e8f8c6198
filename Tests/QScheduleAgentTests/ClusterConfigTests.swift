import Foundation
import Testing
@testable import QScheduleAgent

@Suite("agent.conf [cluster]")
struct ClusterConfigTests {
    static let agent = "[agent]\ntoken = \"0123456789abcdef\"\n"

    func parse(_ text: String, environment: [String: String] = [:], baseDirectory: String = "/srv/qagent") throws -> AgentConfig {
        try ConfigLoader.parse(Self.agent + text, fileName: "agent.conf", baseDirectory: baseDirectory, environment: environment)
    }

    func error(_ text: String) -> String {
        do {
            _ = try parse(text)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults, the URL's parts, and the password from QAGENT_DB_PASSWORD or password_file")
    func values() throws {
        let cluster = try #require(try parse("[cluster]\ndatabase = \"postgresql://qagent@db.example:6432/fleet\"\n").cluster)
        #expect(cluster == {
            var expected = ClusterSettings(host: "db.example", port: 6432, username: "qagent", database: "fleet")
            expected.poolSize = 2
            expected.heartbeatInterval = 3
            expected.deadAfter = 15
            return expected
        }())
        #expect(cluster.displayURL == "postgresql://qagent@db.example:6432/fleet")
        let defaultPort = try #require(try parse("[cluster]\ndatabase = \"postgres://u@h/d\"\npool_size = 4\nheartbeat_interval = 2\ndead_after = 9\n").cluster)
        #expect(defaultPort.port == 5432 && defaultPort.poolSize == 4 && defaultPort.heartbeatInterval == 2 && defaultPort.deadAfter == 9)
        let fromEnvironment = try parse("[cluster]\ndatabase = \"postgresql://u@h/d\"\n", environment: ["QAGENT_DB_PASSWORD": "s3cret"])
        #expect(fromEnvironment.cluster?.password == "s3cret")
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "from-file\n".write(toFile: dir + "/db.pw", atomically: true, encoding: .utf8)
        let fromFile = try parse("[cluster]\ndatabase = \"postgresql://u@h/d\"\npassword_file = \"db.pw\"\n", baseDirectory: dir)
        #expect(fromFile.cluster?.password == "from-file")
        #expect(fromFile.cluster?.displayURL.contains("from-file") == false)
        // With [cluster], this agent fires no cron job by itself.
        let withJob = try parse("[cluster]\ndatabase = \"postgresql://u@h/d\"\n[[job]]\nname = \"j\"\ncron = \"* * * * * ?\"\ncommand = [\"/bin/true\"]\n", baseDirectory: dir)
        let agent = try Agent(config: { var config = withJob; config.agent.dataDir = dir; return config }())
        #expect(agent.scheduler == nil)
    }

    @Test("bad values are named with file:line and key", arguments: [
        ("[cluster]\npool_size = 2\n", "agent.conf:3: [cluster] database: is required"),
        ("[cluster]\ndatabase = \"mysql://u@h/d\"\n", "agent.conf:4: [cluster] database: must be a postgresql://user@host:port/database URL"),
        ("[cluster]\ndatabase = \"postgresql://u:pw@h/d\"\n", "agent.conf:4: [cluster] database: must not hold a password: put it in password_file or QAGENT_DB_PASSWORD"),
        ("[cluster]\ndatabase = \"postgresql://h/d\"\n", "agent.conf:4: [cluster] database: names no user"),
        ("[cluster]\ndatabase = \"postgresql://u@h\"\n", "agent.conf:4: [cluster] database: names no database"),
        ("[cluster]\ndatabase = \"postgresql://u@h/d?sslmode=require\"\n", "agent.conf:4: [cluster] database: has an unsupported parameter \"sslmode\""),
        ("[cluster]\ndatabase = \"postgresql://u@h/d\"\npool_size = 0\n", "agent.conf:5: [cluster] pool_size: must be >= 1 and <= 64, got 0"),
        ("[cluster]\ndatabase = \"postgresql://u@h/d\"\nheartbeat_interval = 5\ndead_after = 14\n", "agent.conf:6: [cluster] dead_after: must be >= 15 (2 x heartbeat_interval + [agent] kill_grace: a worker cut off from the database stops its tasks before its peers may retry them), got 14"),
        ("[cluster]\ndatabase = \"postgresql://u@h/d\"\npassword_file = \"/nonexistent/pw\"\n", "agent.conf:5: [cluster] password_file: cannot read \"/nonexistent/pw\""),
        ("[cluster]\ndatabase = \"postgresql://u@h/d\"\nnodes = 3\n", "agent.conf:5: [cluster] nodes: unknown key"),
        ("[scheduler]\nurl = \"http://c\"\n[cluster]\ndatabase = \"postgresql://u@h/d\"\n", "agent.conf:5: [cluster] and [scheduler] exclude each other"),
    ])
    func rejects(text: String, expected: String) {
        let message = error(text)
        #expect(message.hasPrefix(expected), "got: \(message)")
    }
}
