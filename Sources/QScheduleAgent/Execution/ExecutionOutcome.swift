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
    case timeout(seconds: Int)
    case killed
    case covered(by: String)
    /// The agent is shutting down and its grace ran out.
    case shutdown

    var result: TaskResult {
        switch self {
        case .timeout: return .timedOut
        case .killed, .covered: return .killed
        case .shutdown: return .lost
        }
    }

    var message: String {
        switch self {
        case .timeout(let seconds): return "timed out after \(seconds)s"
        case .killed: return "killed on request"
        case .covered(let newer): return "cancelled: covered by task \(newer)"
        case .shutdown: return "lost: the agent stopped while it ran"
        }
    }
}
