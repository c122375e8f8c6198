import Foundation
import Logging

/// What the runner tells operators about each task's life: one log line per state change
/// (accepted, started, ended — finished, failed, timed out, killed, covered, lost —,
/// recovered, retried) with stable metadata keys, and the task metrics.
///
/// Keys: `task`, `job`, `attempt`, then per event `trigger`, `state` (``TaskResult/metricName``),
/// `result` (the seed's code), `exit_code`, `signal`, `duration_ms`, `message`.
struct TaskEvents: Sendable {
    let logger: Logger
    let metrics: AgentMetrics?

    func accepted(_ record: TaskRecord) {
        logger.info("task accepted", metadata: Self.identify(record, ["trigger": .string(record.trigger.rawValue)]))
    }

    func started(_ record: TaskRecord) {
        logger.info("task started", metadata: Self.identify(record))
    }

    /// A task ended; `ran`: whether it ran here (a queued task killed or covered did not).
    func ended(_ completion: TaskCompletion, attempt: Int, ran: Bool) {
        metrics?.taskFinished(job: completion.job, result: completion.result, durationMs: ran ? completion.duration : nil)
        let level = Self.level(completion.result)
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = Dictionary(minimumCapacity: 9)
        metadata["task"] = .string(completion.taskID)
        metadata["job"] = .string(completion.job)
        metadata["attempt"] = .stringConvertible(attempt)
        metadata["state"] = .string(completion.result.metricName)
        metadata["result"] = .stringConvertible(completion.result.rawValue)
        if ran { metadata["duration_ms"] = .stringConvertible(completion.duration) }
        if let code = completion.exitCode { metadata["exit_code"] = .stringConvertible(code) }
        if let signal = completion.signal { metadata["signal"] = .stringConvertible(signal) }
        if !completion.message.isEmpty { metadata["message"] = .string(completion.message) }
        logger.log(level: level, "task \(completion.result.ending(message: completion.message))", metadata: metadata)
    }

    /// A leftover of the previous process queued again (`recover = "retry"`).
    func recovered(_ record: TaskRecord) {
        logger.notice("task recovered: queued again", metadata: Self.identify(record))
    }

    /// A failed or timed-out task queued again as its next attempt after `backoff` (`retries`).
    func retried(_ record: TaskRecord, after backoff: Duration) {
        logger.notice("task retried", metadata: Self.identify(record, ["backoff_ms": .stringConvertible(backoff.nanoseconds / 1_000_000)]))
        metrics?.taskRetried(job: record.job)
    }

    /// A dispatch refused with its documented reason.
    func refused(job: String, reason: String) {
        logger.debug("dispatch refused", metadata: ["job": "\(job)", "reason": "\(reason)"])
        metrics?.dispatchRefused(reason: reason)
    }

    /// The keys naming a task, with `extra` added in place (one dictionary per line).
    private static func identify(_ record: TaskRecord, _ extra: KeyValuePairs<String, Logger.Metadata.Value> = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = Dictionary(minimumCapacity: 3 + extra.count)
        metadata["task"] = .string(record.id)
        metadata["job"] = .string(record.job)
        metadata["attempt"] = .stringConvertible(record.attempt)
        for (key, value) in extra { metadata[key] = value }
        return metadata
    }

    private static func level(_ result: TaskResult) -> Logger.Level {
        switch result {
        case .succeeded: return .info
        case .failed, .timedOut, .lost: return .warning
        case .killed, .none: return .notice
        }
    }
}

extension TaskResult {
    /// How a task with this result ended, in the words of its log line and of the closing
    /// line of its log: `finished`, `failed`, `timed out`, `killed`, `covered`, `lost`.
    func ending(message: String) -> String {
        switch self {
        case .succeeded: return "finished"
        case .failed: return "failed"
        case .timedOut: return "timed out"
        case .killed: return message.hasPrefix(StopReason.coveredPrefix) ? "covered" : "killed"
        case .lost: return "lost"
        case .none: return "ended"
        }
    }
}
