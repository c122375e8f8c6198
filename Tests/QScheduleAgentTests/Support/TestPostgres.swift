import Foundation
import Logging
import Synchronization
@testable import QScheduleAgent

/// A throwaway PostgreSQL server for cluster tests: `initdb` in a temporary folder, a
/// postmaster on a loopback port run as an unprivileged user (`postgres` when the tests run
/// as root), a database `qagent` owned by user `qagent`; removed by ``stop()``.
final class TestPostgres: Sendable {
    /// The server's binaries (Debian's `postgresql`), newest version installed.
    static var binDirectory: String? {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        guard let newest = versions.last else { return nil }
        let dir = "\(base)/\(newest)/bin"
        return FileManager.default.isExecutableFile(atPath: dir + "/initdb") ? dir : nil
    }

    static var available: Bool { binDirectory != nil }
    /// CI sets `QAGENT_REQUIRE_POSTGRES=1`: there the cluster tests can never be skipped.
    static var required: Bool { ProcessInfo.processInfo.environment["QAGENT_REQUIRE_POSTGRES"] == "1" }

    let port: Int
    let directory: String
    let password: String?
    private let server: Process

    private init(port: Int, directory: String, password: String?, server: Process) {
        self.port = port
        self.directory = directory
        self.password = password
        self.server = server
    }

    /// `database` for `[cluster]`.
    var url: String { "postgresql://qagent@127.0.0.1:\(port)/qagent" }

    /// The `[cluster]` table for an agent of this server.
    func clusterTOML(heartbeatInterval: Int = 1, deadAfter: Int = 4) -> String {
        "[cluster]\ndatabase = \"\(url)\"\nheartbeat_interval = \(heartbeatInterval)\ndead_after = \(deadAfter)\n"
    }

    /// Settings for in-process clients of this server.
    var settings: ClusterSettings {
        var settings = ClusterSettings(host: "127.0.0.1", port: port, username: "qagent", database: "qagent")
        settings.password = password
        return settings
    }

    /// Starts a fresh server; with `password`, clients over TCP must give it (SCRAM).
    static func start(password: String? = nil) async throws -> TestPostgres {
        guard let bin = binDirectory else { throw AgentProcessError(description: "PostgreSQL server binaries not found") }
        let directory = try makeTemporaryDirectory()
        let asRoot = geteuid() == 0
        func run(_ arguments: [String], input: String? = nil) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: asRoot ? "/usr/sbin/runuser" : arguments[0])
            process.arguments = asRoot ? ["-u", "postgres", "--"] + arguments : Array(arguments.dropFirst())
            let out = directory + "/cmd-\(UUID().uuidString).log"
            _ = FileManager.default.createFile(atPath: out, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            process.waitUntilExit()
            try handle.close()
            return (process.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        }
        if asRoot { _ = try DurabilityTests.shell("chown postgres '\(directory)'") }
        var initArguments = [bin + "/initdb", "-D", directory + "/data", "-U", "qagent", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]
        if let password {
            let pwfile = directory + "/pw"
            try password.write(toFile: pwfile, atomically: true, encoding: .utf8)
            if asRoot { _ = try DurabilityTests.shell("chown postgres '\(pwfile)'") }
            initArguments += ["--pwfile=" + pwfile, "--auth-local=trust", "--auth-host=scram-sha-256"]
        } else {
            initArguments += ["--auth=trust"]
        }
        let (status, output) = try run(initArguments)
        guard status == 0 else { throw AgentProcessError(description: "initdb failed: \(output)") }
        for _ in 0..<20 {
            let port = Int.random(in: 31_000...39_000)
            let server = Process()
            let serverArguments = [bin + "/postgres", "-D", directory + "/data", "-p", "\(port)", "-k", directory,
                                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300"]
            server.executableURL = URL(fileURLWithPath: asRoot ? "/usr/sbin/runuser" : serverArguments[0])
            server.arguments = asRoot ? ["-u", "postgres", "--"] + serverArguments : Array(serverArguments.dropFirst())
            let log = FileHandle(forWritingAtPath: "/dev/null")
            server.standardOutput = log
            server.standardError = log
            try server.run()
            let instance = TestPostgres(port: port, directory: directory, password: password, server: server)
            let deadline = Date().addingTimeInterval(20)
            while server.isRunning, Date() < deadline {
                if (try? instance.psql("SELECT 1", database: "postgres")) == "1" {
                    _ = try instance.psql("CREATE DATABASE qagent", database: "postgres")
                    return instance
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            instance.stopServer()  // the port was taken, or it did not come up: try another
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw AgentProcessError(description: "PostgreSQL did not start")
    }

    /// Runs `sql` with psql over the Unix socket; returns the unaligned output.
    @discardableResult
    func psql(_ sql: String, database: String = "qagent") throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = ["-h", directory, "-p", "\(port)", "-U", "qagent", "-d", database, "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0 else { throw AgentProcessError(description: "psql \(sql): \(text)") }
        return text
    }

    private func stopServer() {
        if server.isRunning { kill(server.processIdentifier, SIGINT) }
        // runuser forwards the signal; the postmaster's own pid is in its pid file.
        if let pid = (try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap({ Int32($0) }) {
            kill(pid, SIGQUIT)
        }
        let deadline = Date().addingTimeInterval(10)
        while server.isRunning, Date() < deadline { usleep(20_000) }
    }

    /// Runs `pg_ctl` on this server's data (as `postgres` when the tests run as root).
    private func pgctl(_ arguments: [String]) throws {
        guard let bin = Self.binDirectory else { throw AgentProcessError(description: "no pg_ctl") }
        let options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        let command = [bin + "/pg_ctl", "-D", directory + "/data", "-o", options, "-l", directory + "/pg_ctl.log", "-w", "-t", "30"] + arguments
        let argv = geteuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + command : command
        // posix_spawn and waitpid, not Foundation's Process: its exit detection relies on a
        // descriptor the child inherits, which the postmaster pg_ctl leaves behind keeps open,
        // so waitUntilExit() never returned.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ) == 0 else {
            throw AgentProcessError(description: "cannot run pg_ctl")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        guard status == 0 else { throw AgentProcessError(description: "pg_ctl \(arguments) failed (status \(status))") }
    }

    /// Stops the server (fast shutdown), keeping its files: clients see the database gone.
    func pause() throws {
        try pgctl(["stop", "-m", "fast"])
    }

    /// Starts the paused server again on the same port.
    func resume() throws {
        try pgctl(["start"])
    }

    /// `pg_ctl restart -m fast`: every connection is cut, the server is back at once.
    func restart() throws {
        try pgctl(["restart", "-m", "fast"])
    }

    /// Stops the server and removes its files.
    func stop() {
        stopServer()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts a server, runs `body`, stops the server whatever happens.
    static func with<Value>(password: String? = nil, _ body: (TestPostgres) async throws -> Value) async throws -> Value {
        let server = try await start(password: password)
        defer { server.stop() }
        return try await body(server)
    }
}
