import Foundation
import NIOSSL
import GRDB

/// `qagent config check`: validates `agent.conf` without starting anything — the loader's
/// own checks, then what only shows on the host: every `command`'s program exists and is
/// executable by the job's `user`, every job without a command has a Swift handler in this
/// binary, `data_dir` is writable, and stored state (`jobs/off.do`) that overrides a job's
/// `enabled`.
public enum ConfigCheck {
    /// One problem found, located at `file:line` when the file says where.
    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        public enum Severity: String, Sendable { case warning, error }
        public var severity: Severity
        /// `file:line`, or the file alone.
        public var location: String
        public var text: String

        public var description: String { "\(location): \(severity.rawValue): \(text)" }
    }

    /// The findings for the file at `path`, errors and warnings in file order; empty when it is fine.
    public static func check(
        path: String, handlers: HandlerRegistry = HandlerRegistry(), environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> (config: AgentConfig?, findings: [Finding]) {
        let config: AgentConfig
        do {
            config = try ConfigLoader.load(path: path, environment: environment)
        } catch {
            // The loader's message names file:line already.
            let text = "\(error)"
            let location = text.split(separator: ": ", maxSplits: 1).first.map(String.init) ?? path
            let rest = text.hasPrefix(location + ": ") ? String(text.dropFirst(location.count + 2)) : text
            return (nil, [Finding(severity: .error, location: location, text: rest)])
        }
        let locator = TOMLKeyLocator(text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        func at(_ index: Int, _ key: String?) -> String {
            locator.line(table: "job", index: index, key: key).map { "\(path):\($0)" } ?? path
        }
        var findings: [Finding] = config.warnings.map { warning in
            let location = warning.split(separator: ": ", maxSplits: 1).first.map(String.init) ?? path
            return Finding(severity: .warning, location: location, text: String(warning.dropFirst(location.count + 2)))
        }
        for (index, job) in config.jobs.enumerated() {
            if let argv = job.command, let program = argv.first {
                if let problem = programProblem(program, user: job.user, path: job.environment["PATH"] ?? environment["PATH"]) {
                    findings.append(Finding(severity: .error, location: at(index, "command"), text: "[[job]] \"\(job.name)\" command: \(problem)"))
                }
            } else if handlers.handler(named: job.name) == nil {
                findings.append(Finding(
                    severity: .error, location: at(index, "name"),
                    text: "[[job]] \"\(job.name)\": no command, and no Swift handler of this name is compiled into this binary"))
            }
        }
        if let problem = dataDirectoryProblem(config.agent.dataDir) {
            let line = locator.line(table: "agent", key: "data_dir").map { "\(path):\($0)" } ?? path
            findings.append(Finding(severity: .error, location: line, text: "[agent] data_dir: \(problem)"))
        }
        // TLS files: that they hold what their key says (PEM certificates, a key that goes
        // with its certificate), as the agent and its clients will load them.
        let tlsLine = { (table: String, key: String) in locator.line(table: table, key: key).map { "\(path):\($0)" } ?? path }
        if let tls = config.agent.tls {
            do {
                _ = try ListenerTLS(settings: tls)
            } catch {
                findings.append(Finding(severity: .error, location: tlsLine("agent", "tls_cert"), text: "\(error)"))
            }
        }
        let clients: [(String, ClientTLSSettings?)] = [
            ("report", config.report?.tls), ("scheduler", config.scheduler?.tls),
            ("cluster", config.cluster?.peerCAFile.map { ClientTLSSettings(caFile: $0) }),
        ]
        for case let (table, tls?) in clients where !tls.isDefault {
            let location = tlsLine(table, tls.certificateFile == nil ? "ca_file" : "cert_file")
            do {
                _ = try NIOSSLContext(configuration: HTTPTransport.tlsConfiguration(tls))
            } catch let failure as HTTPTransport.Failure {
                findings.append(Finding(severity: .error, location: location, text: "[\(table)] \(failure)"))
            } catch {
                findings.append(Finding(
                    severity: .error, location: location,
                    text: "[\(table)] key_file \"\(tls.keyFile ?? "")\" does not go with cert_file \"\(tls.certificateFile ?? "")\" (\(error))"))
            }
        }
        for (name, enabled) in storedOverrides(config) {
            guard let index = config.jobs.firstIndex(where: { $0.name == name }) else { continue }
            let written = config.jobs[index].enabled
            findings.append(Finding(
                severity: .warning, location: at(index, config.jobs[index].enabled ? nil : "enabled"),
                text: "[[job]] \"\(name)\": enabled = \(written) here, but it was switched \(enabled ? "on" : "off") (jobs/\(enabled ? "on" : "off").do); "
                    + "the stored state wins until it is switched again"))
        }
        return (config, findings)
    }

    /// Why `program` cannot be run as `user` (the agent's own user when `nil`), or `nil`.
    static func programProblem(_ program: String, user: UserAccount?, path: String?) -> String? {
        let candidates: [String]
        if program.contains("/") {
            candidates = [program]
        } else {
            let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
            candidates = directories.map { $0 + "/" + program }
        }
        var found: String?
        for candidate in candidates {
            var info = stat()
            guard stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            found = candidate
            if isExecutable(info, by: user) { return nil }
        }
        let who = user.map { "user \"\($0.name)\"" } ?? "the agent's user"
        if let found { return "\"\(found)\" is not executable by \(who)" }
        return program.contains("/") ? "\"\(program)\" does not exist (or is not a regular file)" : "\"\(program)\" is not found in PATH (\(path ?? "/usr/local/bin:/usr/bin:/bin"))"
    }

    /// The file's mode bits, read as the kernel would for `user` (root: any execute bit).
    static func isExecutable(_ info: stat, by user: UserAccount?) -> Bool {
        let uid = user?.uid ?? geteuid()
        let groups = user.map { Set([$0.gid] + $0.groups) } ?? Set([getegid()] + supplementaryGroups())
        let mode = info.st_mode
        if uid == 0 { return mode & (S_IXUSR | S_IXGRP | S_IXOTH) != 0 }
        if info.st_uid == uid { return mode & S_IXUSR != 0 }
        if groups.contains(info.st_gid) { return mode & S_IXGRP != 0 }
        return mode & S_IXOTH != 0
    }

    private static func supplementaryGroups() -> [gid_t] {
        let count = getgroups(0, nil)
        guard count > 0 else { return [] }
        var groups = [gid_t](repeating: 0, count: Int(count))
        let got = getgroups(count, &groups)
        return Array(groups.prefix(Int(max(0, got))))
    }

    /// Why the agent could not write its store under `directory`, or `nil`.
    static func dataDirectoryProblem(_ directory: String) -> String? {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { return "\"\(directory)\" is not a directory" }
            return access(directory, W_OK | X_OK) == 0 ? nil : "\"\(directory)\" is not writable by this user"
        }
        // Created at start: the nearest existing parent must be writable.
        var parent = URL(fileURLWithPath: directory).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: parent.path), parent.path != "/" { parent.deleteLastPathComponent() }
        return access(parent.path, W_OK | X_OK) == 0 ? nil : "\"\(directory)\" does not exist and \"\(parent.path)\" is not writable by this user"
    }

    /// Jobs whose stored on/off state differs from `enabled` in the config, read without
    /// writing anything (a running agent may hold the store).
    static func storedOverrides(_ config: AgentConfig) -> [(String, Bool)] {
        let file = URL(fileURLWithPath: config.agent.dataDir).appendingPathComponent("qagent.sqlite").path
        guard FileManager.default.fileExists(atPath: file) else { return [] }
        var configuration = Configuration()
        configuration.readonly = true
        guard let queue = try? DatabaseQueue(path: file, configuration: configuration),
              let rows = try? queue.read({ db in try Row.fetchAll(db, sql: "SELECT name, enabled FROM job_state WHERE enabled IS NOT NULL") })
        else { return [] }
        let written = Dictionary(uniqueKeysWithValues: config.jobs.map { ($0.name, $0.enabled) })
        return rows.compactMap { row -> (String, Bool)? in
            let name: String = row["name"]
            let enabled: Bool = row["enabled"]
            guard let configured = written[name], configured != enabled else { return nil }
            return (name, enabled)
        }.sorted { $0.0 < $1.0 }
    }
}
