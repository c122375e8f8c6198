import Foundation
import QScheduleAgent
import Synchronization

/// Runs a ``QScheduleAgent/JobHandler`` as the agent would, without an agent: no HTTP, no
/// store, no process. Give it a param, a timeout or a kill after some time, and read back
/// how the task ended, what it logged and its last progress.
///
/// ```swift
/// import QScheduleAgentTesting
///
/// @Test func exportsOrders() async {
///     let outcome = await HandlerTest(param: ["table": "orders", "rows": 10]).run(ExportHandler())
///     #expect(outcome.result == .succeeded)
///     #expect(outcome.log.contains { $0.contains("exporting") })
///     #expect(outcome.progress?.fraction == 1)
/// }
/// ```
///
/// Outcomes follow the agent's rules: returning is 200 (`.succeeded`); a thrown error is 500
/// (`.failed`) with the message the agent would record; a timeout or a kill cancels the
/// handler's task and is recorded as such (504, 499) whatever the handler then returns or
/// throws. A handler that defers its completion (`context.deferCompletion()`) is waited for
/// until its handle is called, or until the timeout or kill. Unlike the agent, a handler that
/// ignores cancellation is waited for.
public struct HandlerTest: Sendable {
    /// The task's param (`context.param`, the typed `Param` of a ``QScheduleAgent/TypedJobHandler``).
    public var param: JSONValue
    /// `context.attempt`.
    public var attempt: Int
    /// The job's `timeout`: the handler's task is cancelled after it and the outcome is
    /// `.timedOut`; `nil` = none.
    public var timeout: Duration?
    /// `context.job`.
    public var job: String

    public init(param: JSONValue = .object([:]), attempt: Int = 1, timeout: Duration? = nil, job: String = "test.job") {
        self.param = param
        self.attempt = attempt
        self.timeout = timeout
        self.job = job
    }

    /// How a run ended, with what the handler logged and reported.
    public struct Outcome: Sendable {
        /// `.succeeded` (200), `.failed` (500), `.timedOut` (504) or `.killed` (499).
        public var result: TaskResult
        /// What the agent would record as the task's message.
        public var message: String
        /// The lines the handler wrote to its log (`context.log`, `context.logger`), in order.
        public var log: [String]
        /// The last progress reported (`context.progress`), or `nil`.
        public var progress: Progress?
    }

    /// A progress report.
    public struct Progress: Sendable, Equatable {
        public var fraction: Double
        public var message: String?

        public init(fraction: Double, message: String?) {
            self.fraction = fraction
            self.message = message
        }
    }

    /// Runs a typed handler once: its `Param` is decoded from ``param`` as the agent would
    /// (a param that does not fit fails the run, naming the key).
    public func run<Handler: TypedJobHandler>(_ handler: Handler, killAfter: Duration? = nil) async -> Outcome {
        await run(TypedJobHandlerAdapter(handler: handler), killAfter: killAfter)
    }

    /// Runs `handler` once. `killAfter`: the task is killed (cancelled, `.killed`) after this
    /// long, as `POST /api2/tasks/kill.do` would.
    public func run(_ handler: some JobHandler, killAfter: Duration? = nil) async -> Outcome {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-handler-test-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = TaskLog(path: path, maxBytes: 10 << 20)
        let progress = TaskProgress()
        let deadline = timeout.map { Date().addingTimeInterval(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) }
        let context = TaskContext(
            taskID: "test-\(UUID().uuidString.prefix(8))", job: job, paramText: param.jsonText, attempt: attempt, deadline: deadline,
            log: log, progress: progress)
        let stoppedBy = StopReason()
        let work = Task { await HandlerCall.run(handler, context: context) }
        var stoppers: [Task<Void, Never>] = []
        for (after, reason) in [(timeout, TaskResult.timedOut), (killAfter, TaskResult.killed)] {
            guard let after else { continue }
            stoppers.append(Task {
                guard (try? await Task.sleep(for: after)) != nil else { return }
                if stoppedBy.claim(reason) { work.cancel() }
            })
        }
        var (result, message) = await work.value
        for stopper in stoppers { stopper.cancel() }
        if let reason = stoppedBy.reason {
            result = reason
            message = reason == .timedOut ? "timed out after \(timeout!)" : "killed"
        }
        log.close()
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return Outcome(
            result: result, message: message, log: lines.last == "" ? Array(lines.dropLast()) : lines,
            progress: progress.snapshot.map { Progress(fraction: $0.fraction, message: $0.message) })
    }
}

/// Why a run was stopped: the first of timeout and kill wins.
private final class StopReason: Sendable {
    private let value = Mutex<TaskResult?>(nil)

    /// Records `reason` unless another came first; whether it did.
    func claim(_ reason: TaskResult) -> Bool {
        value.withLock { stopped in
            guard stopped == nil else { return false }
            stopped = reason
            return true
        }
    }

    var reason: TaskResult? { value.withLock { $0 } }
}
