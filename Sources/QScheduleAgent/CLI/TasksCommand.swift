import ArgumentParser
import Foundation

/// `qagent tasks show|kill|log`: one task of the local agent.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Show, kill or read the log of one task.",
        discussion: "Exit status: 0 done, 1 the agent refused (no such task, already finished), 2 error.",
        subcommands: [Show.self, Kill.self, Log.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a task's state, times, exit code and message (JSON).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The task id.") var taskID: String

        func run() async throws {
            let answer = try await TasksCommand.call(options) { try await $0.get("/api2/tasks/\(taskID).do") }
            print(answer.data?.jsonText ?? "{}")
        }
    }

    struct Kill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a running task (recorded 499) or drop a queued one.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The task id.") var taskID: String

        func run() async throws {
            let answer = try await TasksCommand.call(options) { try await $0.post("/api2/tasks/kill.do", json: .object(["taskId": .string(taskID)])) }
            print(answer.message ?? "ok")
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a task's log; with -f, follow it until the task finishes.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The task id.") var taskID: String
        @Flag(name: .shortAndLong, help: "Keep printing new output until the task finishes.") var follow = false

        func run() async throws {
            var offset = 0
            while true {
                let answer = try await TasksCommand.call(options) { try await $0.get("/api2/tasks/\(taskID)/log.do?offset=\(offset)") }
                let chunk = answer.data?.objectValue ?? [:]
                if let text = chunk["text"]?.stringValue, !text.isEmpty {
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

    /// Runs one request against the agent of `--config`; a `ret:false` answer exits 1, a
    /// transport problem 2.
    static func call(_ options: ConfigOption, _ request: (SeedClient) async throws -> SeedClient.Answer) async throws -> SeedClient.Answer {
        let config: AgentConfig
        do {
            config = try options.load()
        } catch {
            print("qagent: \(error)")
            throw ExitCode(2)
        }
        do {
            let answer = try await request(SeedClient(settings: config.agent))
            guard answer.ret else {
                print("qagent: \(answer.message ?? "refused")\(answer.reason.map { " (\($0))" } ?? "")")
                throw ExitCode(1)
            }
            return answer
        } catch let exit as ExitCode {
            throw exit
        } catch {
            print("qagent: \(error)")
            throw ExitCode(2)
        }
    }
}
