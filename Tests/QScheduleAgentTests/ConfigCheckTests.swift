import Foundation
import Testing
@testable import QScheduleAgent

/// `qagent config check` as the real binary: exit 0 fine, 1 warnings only, 2 errors, each
/// finding as file:line: severity: text.
@Suite("qagent config check")
struct ConfigCheckTests {
    static func write(_ jobs: String, dir: String, extra: String = "") throws -> String {
        let path = dir + "/agent.conf"
        try """
            [agent]
            token = "\(testToken)"
            data_dir = "\(dir)/data"
            \(extra)

            \(jobs)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a good file: exit 0 and a one-line summary")
    func good() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try Self.write("[[job]]\nname = \"c.ok\"\ncommand = [\"true\"]\n\n[[job]]\nname = \"c.abs\"\ncommand = [\"/bin/sh\", \"-c\", \"true\"]\n", dir: dir)
        let result = try await AgentProcess.runCLI(["config", "check", "--config", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output == "\(path): ok, 2 jobs\n")
        // Nothing was created: the check starts nothing.
        #expect(!FileManager.default.fileExists(atPath: dir + "/data"))
    }

    @Test("missing, non-executable and unknown programs, a job without a handler: errors with file:line, exit 2")
    func errors() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "#!/bin/sh\n".write(toFile: dir + "/not-executable.sh", atomically: true, encoding: .utf8)
        let path = try Self.write("""
            [[job]]
            name = "c.missing"
            command = ["/nope/tool"]

            [[job]]
            name = "c.plain"
            command = ["\(dir)/not-executable.sh"]

            [[job]]
            name = "c.unknown"
            command = ["no-such-program-qagent"]

            [[job]]
            name = "c.swift"
            """, dir: dir)
        let result = try await AgentProcess.runCLI(["config", "check", "--config", path], environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.status == 2)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines == [
            "\(path):8: error: [[job]] \"c.missing\" command: \"/nope/tool\" does not exist (or is not a regular file)",
            "\(path):12: error: [[job]] \"c.plain\" command: \"\(dir)/not-executable.sh\" is not executable by the agent's user",
            "\(path):16: error: [[job]] \"c.unknown\" command: \"no-such-program-qagent\" is not found in PATH (/usr/bin:/bin)",
            "\(path):19: error: [[job]] \"c.swift\": no command, and no Swift handler of this name is compiled into this binary",
            "\(path): 4 errors, 0 warnings",
        ], "\(result.output)")
    }

    @Test("what the loader refuses (a duplicate job name, a bad value) is one error with its line, exit 2")
    func loaderErrors() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try Self.write("[[job]]\nname = \"c.twice\"\ncommand = [\"true\"]\n\n[[job]]\nname = \"c.twice\"\ncommand = [\"true\"]\n", dir: dir)
        var result = try await AgentProcess.runCLI(["config", "check", "--config", path])
        #expect(result.status == 2)
        #expect(result.output == "\(path):11: error: [[job]] name: \"c.twice\" is declared twice\n\(path): 1 error, 0 warnings\n", "\(result.output)")
        let bad = try Self.write("[[job]]\nname = \"c.t\"\ncommand = [\"true\"]\nretries = -2\n", dir: dir)
        result = try await AgentProcess.runCLI(["config", "check", "--config", bad])
        #expect(result.status == 2 && result.output.hasPrefix("\(bad):9: error: [[job]] \"c.t\" retries: "), "\(result.output)")
        result = try await AgentProcess.runCLI(["config", "check", "--config", dir + "/none.conf"])
        #expect(result.status == 2 && result.output.contains("cannot read the configuration file"), "\(result.output)")
    }

    @Test("stored state that overrides enabled (jobs/off.do) is a warning naming the job's line, exit 1 — also while the agent runs")
    func storedOverride() async throws {
        let jobs = "[[job]]\nname = \"c.a\"\ncommand = [\"true\"]\n\n[[job]]\nname = \"c.b\"\ncommand = [\"true\"]\n"
        try await AgentProcess.with(jobs: jobs) { agent in
            #expect(try await agent.call("POST", "/api2/jobs/off.do", json: #"{"jobs":["c.b"]}"#).ret == true)
            let result = try await AgentProcess.runCLI(["config", "check", "--config", agent.configPath])
            #expect(result.status == 1, "\(result.output)")
            let lines = result.output.split(separator: "\n").map(String.init)
            #expect(lines.count == 2)
            #expect(lines.first?.hasPrefix("\(agent.configPath):") == true)
            #expect(lines.first?.hasSuffix(#": warning: [[job]] "c.b": enabled = true here, but it was switched off (jobs/off.do); the stored state wins until it is switched again"#) == true, "\(result.output)")
            #expect(lines.last == "\(agent.configPath): 2 jobs, 1 warning")
        }
    }

    @Test("secrets hygiene: a token_file others can read is a warning with its line (exit 1) and a start-up warning; chmod 600 clears it; strict_permissions refuses to start")
    func secretPermissions() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (testToken + "\n").write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        chmod(dir + "/token", 0o644)
        func write(strict: Bool) throws -> String {
            let path = dir + "/agent.conf"
            try """
                [agent]
                token_file = "token"
                data_dir = "\(dir)/data"
                listen = "127.0.0.1:0"
                \(strict ? "strict_permissions = true" : "")

                [[job]]
                name = "c.ok"
                command = ["true"]
                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let path = try write(strict: false)
        var result = try await AgentProcess.runCLI(["config", "check", "--config", path])
        #expect(result.status == 1)
        #expect(result.output == """
            \(path):2: warning: [agent] token_file: "\(dir)/token" is readable or writable by group or others (mode 0644): chmod 600 it (strict_permissions = true refuses to start)
            \(path): 1 job, 1 warning

            """, "\(result.output)")
        #expect(!result.output.contains(testToken))
        // The agent starts, and says so in its log.
        try await AgentProcess.with(jobs: "", agentExtra: "token_file = \"\(dir)/token\"") { agent in
            #expect(agent.log.contains("[agent] token_file: \"\(dir)/token\" is readable or writable by group or others (mode 0644)"), "\(agent.log)")
        }
        // Strict: the agent does not start.
        let strict = try write(strict: true)
        result = try await AgentProcess.runCLI(["run", "--config", strict])
        #expect(result.status == 2)
        #expect(result.output.hasPrefix("qagent: \(strict):2: [agent] token_file: \"\(dir)/token\" is readable or writable by group or others (mode 0644)"), "\(result.output)")
        // chmod 600: clean.
        chmod(dir + "/token", 0o600)
        result = try await AgentProcess.runCLI(["config", "check", "--config", strict])
        #expect(result.status == 0, "\(result.output)")
    }
}
