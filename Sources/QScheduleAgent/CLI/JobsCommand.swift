import ArgumentParser
import Foundation

/// `qagent jobs on|off|info`: switch jobs or show one, on the local agent or any `--server`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List jobs, switch jobs on or off, or show one job's state.",
        discussion: ClientOptions.exitCodes,
        subcommands: [List.self, On.self, Off.self, Info.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every job: state, cron, last run and state, next run (--json: the envelope).", discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let answer = try await options.call { try await $0.get("/api2/jobs.do") }
            guard !options.json else { return }
            var table = TextTable(header: ["NAME", "STATE", "CRON", "LAST RUN", "LAST STATE", "DURATION", "NEXT RUN"])
            for job in answer.data?.arrayValue ?? [] {
                table.rows.append([
                    job["name"]?.stringValue ?? "?", job["state"]?.boolValue == true ? "on" : "off",
                    (job["cron"]?.stringValue).flatMap { $0.isEmpty ? nil : $0 } ?? "-", TextTable.time(job["lastRun"]?.intValue),
                    job["lastState"]?.intValue.map { $0 == 0 ? "-" : "\($0)" } ?? "-",
                    job["lastDuration"]?.intValue.map { $0 == 0 ? "-" : "\($0) ms" } ?? "-", TextTable.time(job["nextRun"]?.intValue),
                ])
            }
            print(table.text)
        }
    }

    struct On: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch jobs on (all or none: one unknown name changes nothing).", discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions
        @Argument(help: "Job names.") var jobs: [String]

        func run() async throws { try await JobsCommand.switchJobs(jobs, on: true, options) }
    }

    struct Off: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch jobs off: no new fires or dispatches; running tasks continue.", discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions
        @Argument(help: "Job names.") var jobs: [String]

        func run() async throws { try await JobsCommand.switchJobs(jobs, on: false, options) }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a job: state, cron, last run, last state and duration, next run.", discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions
        @Argument(help: "The job name.") var job: String

        func run() async throws {
            let answer = try await options.call { try await $0.get("/api2/jobs/\(SeedClient.pathSegment(job)).do") }
            guard !options.json, let data = answer.data else { return }
            let times = ["lastRun", "lastUpdate", "nextRun"]
            for key in ["name", "desc", "state", "cron", "recover", "timeout", "lastRun", "lastState", "lastDuration", "lastUpdate", "nextRun"] {
                guard let value = data[key] else { continue }
                var text = value.stringValue ?? value.jsonText
                if text.isEmpty { text = "-" }
                if times.contains(key), let ms = value.intValue {
                    text = ms == 0 ? "-" : "\(ms) (\(Self.iso(ms)))"
                } else if key == "lastDuration", let ms = value.intValue {
                    text = "\(ms) ms"
                }
                print("\(key.padding(toLength: 13, withPad: " ", startingAt: 0)) \(text)")
            }
        }

        static func iso(_ ms: Int64) -> String {
            ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
    }

    static func switchJobs(_ jobs: [String], on: Bool, _ options: ClientOptions) async throws {
        let path = on ? "/api2/jobs/on.do" : "/api2/jobs/off.do"
        let answer = try await options.call { try await $0.post(path, json: .object(["jobs": .array(jobs.map(JSONValue.string))])) }
        if !options.json { print(answer.message ?? SeedMessage.ok) }
    }
}

/// `qagent trigger JOB [--param k=v ...] [--param-json JSON] [--wait [--timeout D]]`: run a job now.
struct TriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger",
        abstract: "Run a job now on the agent (POST /api2/tasks.do); prints the task id.",
        discussion: """
            --param values are strings; use --param-json for numbers, booleans or nested values. --param entries are applied over --param-json. \(ClientOptions.exitCodes)

            With --wait: prints the task id, then how the task ended. \(TaskOutcome.exitCodes)
            """)

    @OptionGroup var options: ClientOptions
    @Argument(help: "The job name.") var job: String
    @Option(name: .customLong("param"), help: ArgumentHelp("A param entry (repeatable).", valueName: "key=value"))
    var params: [String] = []
    @Option(name: .customLong("param-json"), help: ArgumentHelp("The param as a JSON object.", valueName: "json"))
    var paramJSON: String?
    @Option(name: .customLong("task-id"), help: ArgumentHelp("Your own task id: repeating it never runs the task twice.", valueName: "id"))
    var taskID: String?
    @Flag(help: "Wait until the task has finished; exit 0 only when it succeeded.") var wait = false
    @Option(help: ArgumentHelp("With --wait: give up after this long (90, 90s, 10m, 1h; exit 2). Default: no limit.", valueName: "duration"))
    var timeout: String?

    func run() async throws {
        let param: [String: JSONValue]
        var limit: Double?
        do {
            param = try Self.param(json: paramJSON, pairs: params)
            if let timeout {
                guard wait else { throw CLIFailure("--timeout applies to --wait") }
                guard let seconds = DrainCommand.seconds(timeout) else { throw CLIFailure("--timeout must look like 90, 90s, 10m or 1h, got \"\(timeout)\"") }
                limit = seconds
            }
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        var body: [String: JSONValue] = ["job": .string(job), "param": .object(param)]
        if let taskID { body["taskId"] = .string(taskID) }
        let answer = try await options.call { try await $0.post("/api2/tasks.do", json: .object(body)) }
        guard wait else {
            if !options.json { print(answer.message ?? "") }
            return
        }
        guard let id = answer.message, !id.isEmpty else {
            printError("the server accepted the task but did not say its id")
            throw ExitCode(2)
        }
        if !options.json {
            FileHandle.standardOutput.write(Data((id + "\n").utf8))  // unbuffered: shown at once, the wait may be long
        }
        guard let view = try await TaskOutcome.waitForEnd(options, taskID: id, timeout: limit) else {
            printError("task \(id) has not finished after \(timeout ?? ""); it keeps running (qagent tasks show \(id))")
            throw ExitCode(2)
        }
        try TaskOutcome.finish(view, json: options.json)
    }

    /// Builds the param object from `--param-json` and `--param key=value` entries.
    static func param(json: String?, pairs: [String]) throws -> [String: JSONValue] {
        var param: [String: JSONValue] = [:]
        if let json {
            guard let object = JSONValue(parsing: json)?.objectValue else {
                throw CLIFailure("--param-json must be a JSON object, got \(json)")
            }
            param = object
        }
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw CLIFailure("--param must look like key=value, got \"\(pair)\"")
            }
            param[String(pair[..<equals])] = .string(String(pair[pair.index(after: equals)...]))
        }
        return param
    }
}

/// `qagent workers list|set`: the workers of a job, as the server knows them.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List a job's workers or take workers on or offline.",
        discussion: ClientOptions.exitCodes,
        subcommands: [List.self, Set.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a job's workers: address, canSchedule, hostname.", discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions
        @Argument(help: "The job name.") var job: String

        func run() async throws {
            let answer = try await options.call { try await $0.get("/api2/workers/\(SeedClient.pathSegment(job)).do") }
            guard !options.json else { return }
            for worker in answer.data?.arrayValue ?? [] {
                let online = worker["canSchedule"]?.boolValue == true ? "online" : "offline"
                print("\(worker["address"]?.stringValue ?? "?")\t\(online)\t\(worker["hostname"]?.stringValue ?? "")")
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take workers of a job on or offline: qagent workers set JOB 10.0.0.5:20010=off ...",
            discussion: """
                Taking every worker of a job offline is refused (所有机器不能全部下线): switch the job off, or drain the host. \(ClientOptions.exitCodes)
                """)
        @OptionGroup var options: ClientOptions
        @Argument(help: "The job name.") var job: String
        @Argument(help: ArgumentHelp("Workers and their new state.", valueName: "ip:port=on|off")) var workers: [String]

        func run() async throws {
            var states: [String: JSONValue] = [:]
            for entry in workers {
                guard let equals = entry.lastIndex(of: "="), let online = ["on": true, "off": false][String(entry[entry.index(after: equals)...])] else {
                    printError("a worker must look like ip:port=on or ip:port=off, got \"\(entry)\"")
                    throw ExitCode(2)
                }
                states[String(entry[..<equals])] = .bool(online)
            }
            // The seed's form: `workers` is a string holding JSON.
            let body: JSONValue = .object(["jobName": .string(job), "workers": .string(JSONValue.object(states).jsonText)])
            let answer = try await options.call { try await $0.post("/api2/workers/state.do", json: body) }
            if !options.json { print(answer.message ?? SeedMessage.ok) }
        }
    }
}
