import ArgumentParser
import Foundation

/// `qagent tasks show|kill|log`: one task of the local agent.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Show, kill or read the log of one task.",
        discussion: ClientOptions.exitCodes,
        subcommands: [Show.self, Kill.self, Log.self])

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
        static let configuration = CommandConfiguration(abstract: "Print a task's log; with -f, follow it until the task finishes.")
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
                if !follow || complete { return }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
