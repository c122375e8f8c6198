import ArgumentParser
import Foundation

/// `qagent drain [--wait] [--timeout D] [--force-local]`: stop intake before a deploy.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Stop the agent taking work; with --wait, wait until nothing runs or waits.",
        discussion: """
            Running tasks keep running and every read keeps answering. With [scheduler] url, the agent first tells the central scheduler this host is offline for each of its jobs; if that would leave a job with no online worker there (所有机器不能全部下线), nothing is drained unless --force-local. Exit status: 0 drained (and, with --wait, idle), 1 refused, or still busy at the timeout (the busy jobs are printed), 2 error.
            """)

    @OptionGroup var options: ClientOptions

    @Flag(help: "Wait until the agent is idle.")
    var wait = false

    @Option(help: "With --wait: give up after this long: 90, 90s, 10m, 1h.")
    var timeout: String = "10m"

    @Option(help: "With --wait: how often to ask, in seconds.")
    var interval: Double = 1

    @Flag(help: "Drain this host even when the central scheduler refuses to take it offline.")
    var forceLocal = false

    func run() async throws {
        guard let limit = Self.seconds(timeout) else {
            printError("--timeout must look like 90, 90s, 10m or 1h, got \"\(timeout)\"")
            throw ExitCode(2)
        }
        let body: JSONValue = forceLocal ? .object(["forceLocal": .bool(true)]) : .object([:])
        let answer = try await options.waitingForCentral().call(onRefusal: { answer in
            Self.printCentral(answer, toError: true)
            if answer.reason == FailureReason.lastWorker {
                printError("nothing was drained; the central scheduler keeps this host online. Use --force-local to drain it anyway.")
            }
        }) { try await $0.post("/api2/agent/drain.do", json: body) }
        if !options.json {
            print("draining")
            Self.printCentral(answer, toError: false)
        }
        guard wait else { return }
        let deadline = Date().addingTimeInterval(limit)
        while true {
            let check = try await ClientOptions.quiet(options).call { try await $0.get("/api/check/127.0.0.1.do") }
            let busy = check.data?.arrayValue ?? []
            if busy.isEmpty {
                if !options.json { print("idle") }
                return
            }
            if Date() >= deadline {
                for job in busy { print("still running: \(job["name"]?.stringValue ?? "?")") }
                throw ExitCode(1)
            }
            try await Task.sleep(for: .seconds(max(0.05, interval)))
        }
    }

    /// Prints what the central scheduler answered per job (`data.central`), if it was asked.
    static func printCentral(_ answer: SeedClient.Answer, toError: Bool) {
        for outcome in answer.data?["central"]?.arrayValue ?? [] {
            let line = "central scheduler: \(outcome["job"]?.stringValue ?? "?"): \(outcome["outcome"]?.stringValue ?? "?") (\(outcome["message"]?.stringValue ?? ""))"
            if toError || outcome["outcome"]?.stringValue == "failed" { printError(line) } else { print(line) }
        }
    }

    /// Parses `90`, `90s`, `10m`, `1h` into seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let last = text.last, let unit = units[last] {
            return Double(text.dropLast()).map { $0 * unit }.flatMap { $0 >= 0 ? $0 : nil }
        }
        return Double(text).flatMap { $0 >= 0 ? $0 : nil }
    }
}

/// `qagent resume`: undo a drain.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let the agent take work again after a drain (and tell the central scheduler, if any).",
        discussion: "Exit status: 0 resumed, 1 refused (the agent is shutting down), 2 error.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let answer = try await options.waitingForCentral().call { try await $0.post("/api2/agent/resume.do", json: .object([:])) }
        if !options.json {
            print("resumed")
            DrainCommand.printCentral(answer, toError: false)
        }
    }
}

/// `qagent status`: what the agent is doing.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the agent's status: drain state, running and queued tasks, cron, report outbox, central scheduler.",
        discussion: ClientOptions.exitCodes)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let answer = try await options.call { try await $0.get("/api2/agent/status.do") }
        guard !options.json, let status = answer.data else { return }
        func text(_ value: JSONValue?) -> String { value.map { $0.stringValue ?? $0.jsonText } ?? "-" }
        print("address      \(text(status["address"]))  (qagent \(text(status["version"])))")
        let draining = status["shuttingDown"]?.boolValue == true ? "shutting down" : status["draining"]?.boolValue == true ? "draining" : "taking work"
        print("state        \(draining)")
        print("running      \(text(status["running"]))  \(status["runningTasks"]?.arrayValue?.compactMap(\.stringValue).joined(separator: " ") ?? "")")
        print("queued       \(text(status["queued"]))")
        if let cron = status["cron"] {
            print("cron         \(text(cron["mode"])), \(text(cron["jobs"])) jobs, \(text(cron["fires"])) fires, skips \(text(cron["skips"]))")
        }
        if let report = status["report"] {
            print("report       \(text(report["depth"]))/\(text(report["outboxMax"])) waiting, oldest \(text(report["oldestAgeMs"])) ms, "
                + "\(text(report["delivered"])) delivered, \(text(report["consecutiveFailures"])) failures in a row"
                + (report["lastError"]?.stringValue.map { ", last error: \($0)" } ?? ""))
        }
        if let central = status["central"] {
            print("central      \(text(central["url"])), told offline: \(central["toldOffline"]?.boolValue == true ? "yes" : "no")")
        }
    }
}
