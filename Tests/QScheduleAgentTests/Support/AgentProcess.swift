import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
@testable import QScheduleAgent

/// The real `qagent` binary, started on port 0 with a temporary `data_dir`, spoken to over
/// real HTTP on loopback.
/// `Process` is not marked Sendable; the handle is only read (pid, status) after `run()`.
final class AgentProcess: @unchecked Sendable {
    /// The `qagent` executable built next to the test bundle.
    static var binary: String { binary(named: "qagent") }

    /// An executable of this package built next to the test bundle (`qagent`, `qagent-example`).
    static func binary(named name: String) -> String {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var folder = testBinary.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), folder.path != "/" {
            folder = folder.deletingLastPathComponent()
        }
        return folder.appendingPathComponent(name).path
    }

    let dataDir: String
    let configPath: String
    let process: Process
    let ip: String
    let port: Int
    private let output: OutputFile

    var baseURL: String { "http://\(ip):\(port)" }
    /// `ip:port`, the worker address.
    var address: String { "\(ip):\(port)" }

    /// Starts an agent with `jobs` (TOML; `$DATA_DIR` is replaced) in `dataDir` (a new
    /// temporary folder when `nil`) and waits until it listens.
    /// `wrapper` runs the agent through another program (e.g. `unshare` to make it PID 1).
    /// `ip` is the loopback address it listens on and advertises (127.0.0.2, ... for cluster
    /// tests: each agent an IP of its own); `port` 0 lets the system choose; `tail` is appended
    /// after the jobs (tables such as `[cluster]`); `appName` replaces the test app's name.
    static func start(
        jobs: String, dataDir: String? = nil, agentExtra: String = "", wrapper: [String] = [],
        ip: String = "127.0.0.1", port: Int = 0, tail: String = "", environment: [String: String]? = nil, appName: String? = nil,
        executable: String = "qagent"
    ) async throws -> AgentProcess {
        let binary = Self.binary(named: executable)
        let dir = try dataDir ?? makeTemporaryDirectory()
        let configPath = dir + "/agent.conf"
        // Cluster agents get kill_grace = 1 unless told otherwise: dead_after must leave room
        // for 2 heartbeats and the kill grace, and the tests keep dead_after short.
        let extra = tail.contains("[cluster]") && !agentExtra.contains("kill_grace") ? agentExtra + "\nkill_grace = 1" : agentExtra
        let agent = agentTOML(dataDir: dir, extra: extra)
            .replacingOccurrences(of: "app_name = \"qschedule.test\"", with: "app_name = \"\(appName ?? "qschedule.test")\"")
            .replacingOccurrences(of: "listen = \"127.0.0.1:0\"", with: "listen = \"\(ip):\(port)\"")
            .replacingOccurrences(of: "advertise_ip = \"127.0.0.1\"", with: "advertise_ip = \"\(ip)\"")
        try (agent + jobs.replacingOccurrences(of: "$DATA_DIR", with: dir) + "\n" + tail)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let process = Process()
        if let launcher = wrapper.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = Array(wrapper.dropFirst()) + [binary, "run", "--config", configPath]
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["run", "--config", configPath]
        }
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        // A file, not a pipe: an agent that logs faster than a busy test process reads must
        // never block on a full pipe (its log lines are written under a lock, from the threads
        // that serve requests: a full pipe would hang the agent, not the test).
        let output = try OutputFile(path: dir + "/agent-\(UUID().uuidString.prefix(8)).out")
        process.standardOutput = output.handle
        process.standardError = output.handle
        try process.run()
        try output.handle.close()
        let deadline = Date().addingTimeInterval(20)
        var port: Int?
        while port == nil {
            guard process.isRunning, Date() < deadline else {
                throw AgentProcessError(description: "agent did not start: \(output.text)")
            }
            try await Task.sleep(for: .milliseconds(20))
            let text = output.text
            // The "qagent listening" line, in the text (address=ip:port) or JSON ("address":"ip:port") format.
            let pattern = "address(=|\":\")" + ip.replacingOccurrences(of: ".", with: "\\.") + ":[0-9]+"
            if let range = text.range(of: pattern, options: .regularExpression) {
                port = Int(text[range].split(separator: ":").last ?? "")
            }
        }
        return AgentProcess(dataDir: dir, configPath: configPath, process: process, ip: ip, port: port!, output: output)
    }

    private init(dataDir: String, configPath: String, process: Process, ip: String, port: Int, output: OutputFile) {
        self.dataDir = dataDir
        self.configPath = configPath
        self.process = process
        self.ip = ip
        self.port = port
        self.output = output
    }

    /// Everything the agent printed (stdout and stderr) so far.
    var log: String { output.text }

    /// Sends `signal` (none for 0) and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 30) async throws -> Int32 {
        if process.isRunning, signal != 0 { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw AgentProcessError(description: "agent did not exit within \(timeout)s; its output:\n\(output.text.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// A copy of the agent's config pointing `listen` at the bound port, for CLI commands
    /// (which read the address from `--config`); returns its path.
    func cliConfig() throws -> String {
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: "\(ip):0", with: "\(ip):\(port)")
        let path = dataDir + "/cli.conf"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// SIGKILL, without waiting: for `defer` when a test ends early.
    func killNow() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    /// Starts an agent, runs `body`, then kills the agent and removes its data folder,
    /// whether `body` succeeded or threw.
    static func with(jobs: String, agentExtra: String = "", _ body: (AgentProcess) async throws -> Void) async throws {
        let agent = try await start(jobs: jobs, agentExtra: agentExtra)
        defer { try? FileManager.default.removeItem(atPath: agent.dataDir) }
        defer { agent.killNow() }
        try await body(agent)
    }

    /// Sends a request over real HTTP; `token: nil` omits the header.
    func call(_ method: String, _ path: String, token: String? = testToken, body: Data? = nil) async throws -> Reply {
        var request = URLRequest(url: URL(string: baseURL + path)!, timeoutInterval: 30)
        request.httpMethod = method
        if let token { request.setValue(token, forHTTPHeaderField: "Q-Server-Token") }
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let text = String(decoding: data, as: UTF8.self)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return Reply(status: .init(code: status), json: JSONValue(parsing: data) ?? .null, text: text)
    }

    func call(_ method: String, _ path: String, token: String? = testToken, json: String) async throws -> Reply {
        try await call(method, path, token: token, body: Data(json.utf8))
    }

    /// Runs `qagent ARGS` to completion; returns its exit status and output (stdout and
    /// stderr together, through a temporary file: no pipe whose end-of-file could be missed).
    /// Waits without blocking a thread: fakes served by this test process must keep
    /// answering while the CLI talks to them.
    static func runCLI(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-cli-\(UUID().uuidString).out").path
        guard FileManager.default.createFile(atPath: outputPath, contents: nil), let output = FileHandle(forWritingAtPath: outputPath) else {
            throw AgentProcessError(description: "cannot create \(outputPath)")
        }
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try output.close()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning {
            guard Date() < deadline else {
                process.terminate()
                throw AgentProcessError(description: "qagent \(arguments.joined(separator: " ")) did not exit within 60 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text)
    }
}

/// A child's output (stdout and stderr), written to a file the child appends to.
struct OutputFile: Sendable {
    let path: String
    /// The writing end given to the child; closed here once the child has it.
    let handle: FileHandle

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw AgentProcessError(description: "cannot create \(path)")
        }
        self.path = path
        self.handle = handle
    }

    var text: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

struct AgentProcessError: Error, CustomStringConvertible {
    var description: String
}
