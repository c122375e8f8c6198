import ArgumentParser
import Foundation

/// A task's final state for pipelines (`trigger --wait`, `tasks log -f`): waits until the task
/// is finished, prints how it ended, and exits 0 when it succeeded (200), 1 for any other
/// final state (500 failed, 504 timed out, 499 killed, 503 lost), 2 on error or when the
/// wait timed out.
enum TaskOutcome {
    static let exitCodes = "Exit status: 0 the task succeeded (200); 1 it ended otherwise (500, 504, 499, 503) or the request was refused; 2 error (unreachable server, the wait timed out, bad arguments)."

    /// Polls the task until it is finished (every 250 ms, slowing to 2 s); `nil` when
    /// `timeout` (seconds) passed first.
    static func waitForEnd(_ options: ClientOptions, taskID: String, timeout: Double?) async throws -> [String: JSONValue]? {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        let path = "/api2/tasks/\(SeedClient.pathSegment(taskID)).do"
        var pause = 0.25
        while true {
            let answer = try await ClientOptions.quiet(options).call { try await $0.get(path) }
            let view = answer.data?.objectValue ?? [:]
            if view["state"]?.stringValue == "finished" { return view }
            if let deadline, Date() >= deadline { return nil }
            let left = deadline.map { $0.timeIntervalSinceNow } ?? pause
            try await Task.sleep(for: .seconds(max(0.01, min(pause, left))))
            pause = min(pause * 1.5, 2)
        }
    }

    /// Prints the final state (`--json`: the task as JSON) and exits by it.
    static func finish(_ view: [String: JSONValue], json: Bool, toError: Bool = false) throws -> Never {
        let code = view["lastState"]?.intValue ?? 0
        if json {
            print(JSONValue.object(view).jsonText)
        } else {
            let line = describe(view)
            if toError { printError(line) } else { print(line) }
        }
        throw ExitCode(code == 200 ? 0 : 1)
    }

    /// `<task> finished (200) in 12 ms: exit code 0`, `... failed (500) ...`, ...
    static func describe(_ view: [String: JSONValue]) -> String {
        let code = Int(view["lastState"]?.intValue ?? 0)
        let how = [200: "succeeded", 500: "failed", 504: "timed out", 499: "killed", 503: "lost"][code] ?? "ended"
        let took = view["duration"]?.intValue.map { " in \($0) ms" } ?? ""
        let attempt = (view["attempt"]?.intValue ?? 1) > 1 ? " (attempt \(view["attempt"]!.intValue!))" : ""
        let message = view["message"]?.stringValue.flatMap { $0.isEmpty ? nil : ": \($0)" } ?? ""
        return "\(view["taskId"]?.stringValue ?? "task") \(how) (\(code))\(attempt)\(took)\(message)"
    }
}
