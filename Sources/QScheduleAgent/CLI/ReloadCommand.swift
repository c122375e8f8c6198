import ArgumentParser
import Foundation

/// `qagent reload`: the agent re-reads agent.conf (as on SIGHUP) and says what changed.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Re-read agent.conf: jobs are added, changed and removed without a restart (POST /api2/agent/reload.do).",
        discussion: """
            A removed job takes no new task and goes once its tasks are over. Keys outside [[job]] (listen, data_dir, tokens, [report], ...) are reported and kept until a restart. An invalid file changes nothing: the error is printed. \(ClientOptions.exitCodes)
            """)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let answer = try await options.call(onRefusal: { answer in
            if let error = answer.data?["error"]?.stringValue { printError(error) }
        }) { try await $0.post("/api2/agent/reload.do", json: .object([:])) }
        guard !options.json else { return }
        let data = answer.data ?? .object([:])
        func names(_ key: String) -> [String] { data[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        let changes = [("added", names("added")), ("changed", names("changed")), ("removed", names("removed"))].filter { !$0.1.isEmpty }
        print(changes.isEmpty ? "reloaded: no job changed" : "reloaded: " + changes.map { "\($0.0) \($0.1.joined(separator: ", "))" }.joined(separator: "; "))
        let kept = names("notApplied")
        if !kept.isEmpty { print("kept until a restart: \(kept.joined(separator: ", "))") }
    }
}
