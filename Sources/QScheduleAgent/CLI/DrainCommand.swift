import ArgumentParser
import Foundation

/// `qagent drain [--wait] [--timeout D]`: stop intake before a deploy; optionally wait until idle.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Stop the local agent taking work; with --wait, wait until nothing runs or waits.",
        discussion: """
            Running tasks keep running and every read keeps answering. Exit status: 0 drained (and, with
            --wait, idle), 1 still busy at the timeout (the busy jobs are printed), 2 error.
            """)

    @OptionGroup var options: ConfigOption

    @Flag(help: "Wait until the agent is idle.")
    var wait = false

    @Option(help: "With --wait: give up after this long: 90, 90s, 10m, 1h.")
    var timeout: String = "10m"

    @Option(help: "With --wait: how often to ask.")
    var interval: Double = 1

    func run() async throws {
        guard let limit = Self.seconds(timeout) else {
            print("qagent drain: --timeout must look like 90, 90s, 10m or 1h, got \"\(timeout)\"")
            throw ExitCode(2)
        }
        let answer = try await TasksCommand.call(options) { try await $0.post("/api2/agent/drain.do", json: .object([:])) }
        print("draining: \(answer.message ?? "")")
        guard wait else { return }
        let deadline = Date().addingTimeInterval(limit)
        while true {
            let check = try await TasksCommand.call(options) { try await $0.get("/api/check/127.0.0.1.do") }
            let busy = check.data?.arrayValue ?? []
            if busy.isEmpty {
                print("idle")
                return
            }
            if Date() >= deadline {
                for job in busy { print("still running: \(job["name"]?.stringValue ?? "?")") }
                throw ExitCode(1)
            }
            try await Task.sleep(for: .seconds(max(0.05, interval)))
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
        abstract: "Let the local agent take work again after a drain.",
        discussion: "Exit status: 0 resumed, 1 refused (the agent is shutting down), 2 error.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let answer = try await TasksCommand.call(options) { try await $0.post("/api2/agent/resume.do", json: .object([:])) }
        print("resumed: \(answer.message ?? "")")
    }
}

/// `qagent status`: what the local agent is doing (JSON).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print the local agent's status: drain state, running and queued tasks, cron fires and skips (JSON).",
        discussion: "Exit status: 0 printed, 2 error.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let answer = try await TasksCommand.call(options) { try await $0.get("/api2/agent/status.do") }
        print(answer.data?.jsonText ?? "{}")
    }
}
