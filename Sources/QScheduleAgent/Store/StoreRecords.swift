import Foundation

/// The outcome codes the seed reports as `lastState` (DESIGN §2).
public enum TaskResult: Int, Sendable, Codable, CaseIterable {
    /// Never finished.
    case none = 0
    case succeeded = 200
    /// Killed on request.
    case killed = 499
    /// Threw, or exited non-zero.
    case failed = 500
    /// Lost: the agent stopped while it ran and the job's recover policy is `discard`.
    case lost = 503
    case timedOut = 504
}

/// Where a task is in its life.
public enum TaskStatus: String, Sendable, Codable {
    case queued
    case running
    case finished
}

/// What created a task.
public enum TaskTrigger: String, Sendable, Codable {
    /// `POST /api2/tasks.do` (an operator or a central scheduler).
    case dispatch
    /// The agent's own cron firer.
    case cron
}

/// The persisted state of one job on this host.
public struct JobStateRecord: Sendable, Equatable {
    public var name: String
    /// `nil` until switched by `jobs/on.do`/`off.do`; then it wins over `agent.conf`.
    public var enabled: Bool?
    /// Whether this host takes dispatches and fires for the job (`workers/state.do`).
    public var canSchedule: Bool
    public var lastRun: Int64
    public var lastState: Int
    public var lastDuration: Int64
    public var lastUpdate: Int64
    /// Scheduled time (epoch ms) of the last cron fire considered, fired or skipped.
    public var lastFire: Int64?

    public init(name: String, enabled: Bool? = nil, canSchedule: Bool = true, lastRun: Int64 = 0, lastState: Int = 0, lastDuration: Int64 = 0, lastUpdate: Int64 = 0, lastFire: Int64? = nil) {
        self.name = name
        self.enabled = enabled
        self.canSchedule = canSchedule
        self.lastRun = lastRun
        self.lastState = lastState
        self.lastDuration = lastDuration
        self.lastUpdate = lastUpdate
        self.lastFire = lastFire
    }
}

/// One task as journaled in the store. Times are epoch milliseconds.
public struct TaskRecord: Sendable, Equatable {
    public var id: String
    public var job: String
    /// The param as compact JSON text.
    public var param: String
    public var status: TaskStatus
    public var result: TaskResult
    public var attempt: Int
    public var trigger: TaskTrigger
    public var acceptedAt: Int64
    public var scheduledAt: Int64?
    public var startTime: Int64?
    public var endTime: Int64?
    public var duration: Int64?
    public var pid: Int32?
    public var exitCode: Int32?
    public var signal: Int32?
    public var message: String

    public init(id: String, job: String, param: String, trigger: TaskTrigger, acceptedAt: Int64, attempt: Int = 1) {
        self.id = id
        self.job = job
        self.param = param
        self.status = .queued
        self.result = .none
        self.attempt = attempt
        self.trigger = trigger
        self.acceptedAt = acceptedAt
        self.message = ""
    }
}

/// How a finished task ended, as written by ``AgentStore/finishTask(_:)``.
public struct TaskCompletion: Sendable {
    public var taskID: String
    public var job: String
    public var result: TaskResult
    public var startTime: Int64
    public var endTime: Int64
    public var exitCode: Int32?
    public var signal: Int32?
    public var message: String
    /// The attempt that ended (for logs; the journal keeps the task's attempt itself).
    public var attempt: Int = 1
    /// The job's `alert_after_failures` (0: never), set by the runner when it records the end.
    public var alertAfterFailures: Int = 0

    public var duration: Int64 { max(0, endTime - startTime) }
}

/// Who ran a command: its pid, the start time of that pid (clock ticks after boot, field 22
/// of `/proc/<pid>/stat`) and the agent instance that started it. Together they tell a
/// leftover process of a previous run from an unrelated process that reuses the pid.
public struct ProcessIdentity: Sendable, Equatable {
    public var pid: Int32
    public var startTicks: Int64?
    public var instance: String?

    public init(pid: Int32, startTicks: Int64?, instance: String?) {
        self.pid = pid
        self.startTicks = startTicks
        self.instance = instance
    }

    /// The start time of `pid` from `/proc`, or `nil` when there is no such process.
    public static func startTicks(of pid: Int32) -> Int64? {
        ProcStat(pid: pid)?.startTicks
    }
}

/// A task a previous agent process left queued or running, with the identity of its
/// command's process when one was recorded.
public struct LeftoverTask: Sendable {
    public var record: TaskRecord
    public var process: ProcessIdentity?
}
