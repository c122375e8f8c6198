import ArgumentParser
import Foundation

/// `qagent tasks show|kill|log`: one task of the local agent.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List tasks, or show, kill or read the log of one task.",
        discussion: ClientOptions.exitCodes,
        subcommands: [List.self, Show.self, Kill.self, Log.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tasks, newest first (--json: the envelope, with `next` for the following page).",
            discussion: ClientOptions.exitCodes)
        @OptionGroup var options: ClientOptions
        @Option(help: "Only this job's tasks.") var job: String?
        @Option(help: "Only tasks in this state: queued, running or finished.") var state: String?
        @Option(help: "Only tasks accepted at or after this time (epoch ms).") var since: Int64?
        @Option(help: "Only tasks before this position: epoch ms, or the `next` of a previous page.") var before: String?
        @Option(help: "At most this many (1-1000).") var limit: Int = 100

        func run() async throws {
            var query: [String] = ["limit=\(limit)"]
            if let job { query.append("job=\(SeedClient.pathSegment(job))") }
            if let state { query.append("state=\(SeedClient.pathSegment(state))") }
            if let since { query.append("since=\(since)") }
            if let before { query.append("before=\(SeedClient.pathSegment(before))") }
            let path = "/api2/tasks.do?" + query.joined(separator: "&")
            let answer = try await options.call { try await $0.get(path) }
            guard !options.json else { return }
            var table = TextTable(header: ["TASK", "JOB", "STATE", "RESULT", "ATTEMPT", "ACCEPTED", "DURATION"])
            for task in answer.data?["tasks"]?.arrayValue ?? [] {
                table.rows.append([
                    task["taskId"]?.stringValue ?? "?", task["job"]?.stringValue ?? "?", task["state"]?.stringValue ?? "?",
                    task["lastState"]?.intValue.map { $0 == 0 ? "-" : "\($0)" } ?? "-", task["attempt"]?.intValue.map { "\($0)" } ?? "-",
                    TextTable.time(task["acceptedAt"]?.intValue), task["duration"]?.intValue.map { "\($0) ms" } ?? "-",
                ])
            }
            print(table.text)
            if let next = answer.data?["next"]?.stringValue { print("more: --before \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a task's state, times, exit code and message (JSON).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The task id.") var taskID: String

        func run() async throws {
            let answer = try await options.call { try await $0.get("/api2/tasks/\(SeedClient.pathSegment(taskID)).do") }
            if !options.json { print(answer.data?.jsonText ?? "{}") }
        }
    }

    struct Kill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a running task (recorded 499) or drop a queued one.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The task id.") var taskID: String

        func run() async throws {
            let answer = try await options.call { try await $0.post("/api2/tasks/kill.do", json: .object(["taskId": .string(taskID)])) }
            if !options.json { print(answer.message ?? "ok") }
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a task's log; with -f, follow it until the task finishes.",
            discussion: "Without -f: \(ClientOptions.exitCodes) With -f, once the log is complete, how the task ended goes to stderr. \(TaskOutcome.exitCodes)")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The task id.") var taskID: String
        @Flag(name: .shortAndLong, help: "Keep printing new output until the task finishes.") var follow = false

        func run() async throws {
            var offset = 0
            while true {
                let answer = try await options.call { try await $0.get("/api2/tasks/\(SeedClient.pathSegment(taskID))/log.do?offset=\(offset)") }
                let chunk = answer.data?.objectValue ?? [:]
                if !options.json, let text = chunk["text"]?.stringValue, !text.isEmpty {
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
                guard case .int(let next)? = chunk["nextOffset"] else { throw ExitCode(2) }
                let complete = chunk["complete"]?.boolValue ?? true
                if Int(next) > offset {
                    offset = Int(next)
                    continue
                }
                if !follow { return }
                if complete {
                    let view = try await options.call { try await $0.get("/api2/tasks/\(SeedClient.pathSegment(taskID)).do") }
                    try TaskOutcome.finish(view.data?.objectValue ?? [:], json: false, toError: true)
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
