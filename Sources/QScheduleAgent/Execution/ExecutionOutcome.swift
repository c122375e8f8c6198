/// How one run of a handler ended, before it is journaled.
struct ExecutionOutcome: Sendable, Equatable {
    var result: TaskResult
    var exitCode: Int32? = nil
    var signal: Int32? = nil
    var message: String
    /// Set when the agent stopped the task (timeout, kill, cover) rather than it ending by itself.
    var stoppedBy: StopReason? = nil

    static func failed(_ message: String) -> ExecutionOutcome {
        ExecutionOutcome(result: .failed, message: message)
    }
}

/// Why the agent stopped a task before it finished by itself.
enum StopReason: Sendable, Equatable {
    /// The message of a task stopped because the cluster lease expired (the result sink
    /// recognises it: such a task is retried per its job's `recover`).
    static let leaseLostMessage = "lost: this worker could not reach the cluster's database, so it stopped the task before its peers may retry it"

    case timeout(seconds: Int)
    case killed
    case covered(by: String)
    /// The agent is shutting down and its grace ran out.
    case shutdown
    /// Cluster mode: this worker could not renew its lease on the cluster's database in time,
    /// so it stops its tasks before its peers may run them again.
    case leaseLost

    var result: TaskResult {
        switch self {
        case .timeout: return .timedOut
        case .killed, .covered: return .killed
        case .shutdown, .leaseLost: return .lost
        }
    }

    /// How a cover's message begins (`cancelled: covered by task <newer id>`).
    static let coveredPrefix = "cancelled: covered by task "

    var message: String {
        switch self {
        case .timeout(let seconds): return "timed out after \(seconds)s"
        case .killed: return "killed on request"
        case .covered(let newer): return Self.coveredPrefix + newer
        case .shutdown: return "lost: the agent stopped while it ran"
        case .leaseLost: return Self.leaseLostMessage
        }
    }
}
