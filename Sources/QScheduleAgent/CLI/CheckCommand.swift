import ArgumentParser
import Foundation

/// `qagent check`: the pre-deploy question "is anything executing on this host?".
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask the agent whether any task is running or queued.",
        discussion: "Exit status: 0 idle, 1 busy (the busy jobs are printed), 2 error (agent unreachable, refused, bad answer).")

    @OptionGroup var options: ClientOptions

    @Option(help: "The IP to ask about (default: the --server's host, else the agent's advertised IP, else 127.0.0.1).")
    var ip: String?

    func run() async throws {
        let askIP = ip
            ?? options.server.flatMap { URL(string: $0)?.host }
            ?? (try? options.loadConfig())?.agent.advertiseIP
            ?? "127.0.0.1"
        let answer = try await options.call(refusalExit: 2) { try await $0.get("/api/check/\(askIP).do") }
        let busy = answer.data?.arrayValue ?? []
        if busy.isEmpty {
            if !options.json { print("idle") }
            return
        }
        if !options.json {
            for job in busy {
                let duration = job["lastDuration"]?.intValue ?? 0
                print("busy: \(job["name"]?.stringValue ?? "?") (running for \(duration / 1000)s)")
            }
        }
        throw ExitCode(1)
    }
}
