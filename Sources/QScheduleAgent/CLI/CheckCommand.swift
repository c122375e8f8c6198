import ArgumentParser
import Foundation

/// `qagent check`: the pre-deploy question "is anything executing on this host?".
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask the local agent whether any task is running or queued.",
        discussion: "Exit status: 0 idle, 1 busy (the busy jobs are printed), 2 error (agent unreachable, bad answer).")

    @OptionGroup var options: ConfigOption

    @Option(help: "The IP to ask about (default: the agent's advertised IP, else 127.0.0.1).")
    var ip: String?

    func run() async throws {
        do {
            let config = try options.load()
            let client = SeedClient(settings: config.agent)
            let askIP = ip ?? config.agent.advertiseIP ?? "127.0.0.1"
            let answer = try await client.get("/api/check/\(askIP).do")
            guard answer.ret else {
                print("qagent check: \(answer.message ?? "failed")\(answer.reason.map { " (\($0))" } ?? "")")
                throw ExitCode(2)
            }
            let busy = answer.data?.arrayValue ?? []
            if busy.isEmpty {
                print("idle")
                return
            }
            for job in busy {
                let duration = job["lastDuration"]?.intValue ?? 0
                print("busy: \(job["name"]?.stringValue ?? "?") (running for \(duration / 1000)s)")
            }
            throw ExitCode(1)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            print("qagent check: \(error)")
            throw ExitCode(2)
        }
    }
}
