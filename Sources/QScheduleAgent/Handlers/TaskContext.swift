import Foundation
import NIOPosix
import Logging
import Synchronization

/// What a handler knows about the task it runs, and how it reports back.
///
/// Param getters throw ``TaskParamError`` naming the key, so a handler can simply `try`
/// them: the task then fails (500) with a message that says which key was wrong.
public struct TaskContext: Sendable {
    /// The task id (caller-given or generated in the seed's shape).
    public let taskID: String
    /// The job name.
    public let job: String
    /// The task's param object as sent (parsed on first use).
    public var param: JSONValue { paramBox.value }
    private let paramBox: LazyParam
    /// 1 for the first run of this task id.
    public let attempt: Int
    /// When the agent will stop the task, or `nil` when the job has no timeout.
    public let deadline: Date?
    /// Writes into this task's log file.
    public let log: TaskLog
    /// A logger whose output goes to this task's log file.
    public let logger: Logger
    let progressBox: TaskProgress
    /// The param as the compact JSON text journaled with the task (what a command reads).
    let paramText: String

    /// Where ``blocking(_:)`` runs its work: the agent's `blocking_threads`.
    let blockingPool: NIOThreadPool
    /// Whether the handler deferred its completion, and the result once given.
    let deferral = DeferredCompletion()

    package init(
        taskID: String, job: String, paramText: String, attempt: Int, deadline: Date?, log: TaskLog, progress: TaskProgress = TaskProgress(),
        blockingPool: NIOThreadPool = .singleton
    ) {
        self.blockingPool = blockingPool
        self.taskID = taskID
        self.job = job
        self.paramText = paramText
        self.paramBox = LazyParam(text: paramText)
        self.attempt = attempt
        self.deadline = deadline
        self.log = log
        self.progressBox = progress
        var logger = Logger(label: "qagent.task.\(job)") { _ in TaskLogHandler(log: log) }
        logger[metadataKey: "task"] = "\(taskID)"
        self.logger = logger
    }

    // MARK: Blocking work

    /// Runs `work`, which blocks its thread (synchronous file or network I/O, `sleep`, a C
    /// library), on the agent's own pool of `blocking_threads` threads, and returns its result.
    ///
    /// The cooperative pool that serves HTTP, acknowledges dispatches and fires crons has as
    /// many threads as cores: a handler that blocks one of them slows the whole agent. Work
    /// run here cannot. A blocking call cannot be interrupted: cancellation (timeout, kill,
    /// cover) is checked when it returns, and then throws `CancellationError`, so the task is
    /// recorded by why it was stopped. Keep each call short enough for `kill_grace`.
    ///
    /// ```swift
    /// let rows = try await context.blocking { try legacyExport(table: "orders") }
    /// ```
    public func blocking<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try checkCancellation()
        let result = try await blockingPool.runIfActive(work)
        try checkCancellation()
        return result
    }

    // MARK: Completing later

    /// Lets the handler return before its work is done: the task stays running until the
    /// returned handle's ``TaskCompletionHandle/complete()`` or ``TaskCompletionHandle/fail(_:)``
    /// is called — from a callback, a process's termination handler, another task.
    ///
    /// Everything that holds for a running task holds meanwhile: `/api/check` lists it, the
    /// job's `timeout` and `kill.do` stop it (recorded 504 or 499; the handle's later calls
    /// return `false`), and after a crash it is settled per `recover`. Give such jobs a
    /// `timeout`: a handle dropped without a call leaves its task running until it is stopped.
    /// A handler that throws after deferring fails the task with its error, as usual.
    ///
    /// ```swift
    /// let completion = context.deferCompletion()
    /// process.terminationHandler = { process in
    ///     if process.terminationStatus == 0 {
    ///         completion.complete()
    ///     } else {
    ///         completion.fail(ExportError.exitStatus(process.terminationStatus))
    ///     }
    /// }
    /// try process.run()
    /// ```
    public func deferCompletion() -> TaskCompletionHandle {
        deferral.deferCompletion()
        return TaskCompletionHandle(completion: deferral)
    }

    // MARK: Cancellation

    /// Whether the agent asked the task to stop (timeout, kill, cover, shutdown).
    public var isCancelled: Bool { Task.isCancelled }

    /// Throws `CancellationError` when the agent asked the task to stop.
    public func checkCancellation() throws {
        try Task.checkCancellation()
    }

    // MARK: Progress

    /// Reports progress, shown by `GET /api2/tasks/$taskId.do` while the task runs.
    /// `fraction` is clamped to 0...1.
    public func progress(_ fraction: Double, _ message: String? = nil) {
        progressBox.set(fraction: fraction, message: message)
    }

    // MARK: Param

    /// The member `key` of the param, or `nil` when absent.
    public func value(_ key: String) -> JSONValue? {
        param.objectValue?[key]
    }

    /// A required string member.
    public func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw TaskParamError(key: key, problem: "is required") }
        return value
    }

    /// An optional string member (absent or `null` gives `nil`).
    public func optionalString(_ key: String) throws -> String? {
        switch value(key) {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw TaskParamError(key: key, problem: "must be a string, got \(other.typeName)")
        }
    }

    /// A required integer member (a JSON number without a fraction).
    public func int(_ key: String) throws -> Int {
        guard let value = try optionalInt(key) else { throw TaskParamError(key: key, problem: "is required") }
        return value
    }

    /// An optional integer member.
    public func optionalInt(_ key: String) throws -> Int? {
        switch value(key) {
        case nil, .null?: return nil
        case .int(let number)?: return Int(exactly: number)
        case .double(let number)? where number.rounded() == number && abs(number) < 9e15: return Int(number)
        case let other?: throw TaskParamError(key: key, problem: "must be an integer, got \(other.typeName)")
        }
    }

    /// A required boolean member.
    public func bool(_ key: String) throws -> Bool {
        guard let value = try optionalBool(key) else { throw TaskParamError(key: key, problem: "is required") }
        return value
    }

    /// An optional boolean member.
    public func optionalBool(_ key: String) throws -> Bool? {
        switch value(key) {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw TaskParamError(key: key, problem: "must be true or false, got \(other.typeName)")
        }
    }

    /// A required member of any JSON type.
    public func json(_ key: String) throws -> JSONValue {
        guard let value = value(key) else { throw TaskParamError(key: key, problem: "is required") }
        return value
    }

    /// The whole param decoded as `T`; errors name the key path that did not fit.
    public func decodeParam<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(param.jsonText.utf8))
        } catch let error as DecodingError {
            throw TaskParamError(decoding: error)
        }
    }
}

/// A param member that is missing or of the wrong type.
public struct TaskParamError: Error, CustomStringConvertible, Sendable {
    /// The key (or dotted key path) at fault.
    public let key: String
    public let problem: String

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
    }

    init(decoding error: DecodingError) {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(key: path(context.codingPath + [key]), problem: "is required")
        case .typeMismatch(let type, let context):
            self.init(key: path(context.codingPath), problem: "must be \(type)")
        case .valueNotFound(let type, let context):
            self.init(key: path(context.codingPath), problem: "must be \(type), got null")
        case .dataCorrupted(let context):
            self.init(key: path(context.codingPath), problem: context.debugDescription)
        @unknown default:
            self.init(key: "", problem: "\(error)")
        }
    }

    public var description: String { "param \"\(key)\" \(problem)" }
}

/// A task's param, parsed from its journaled JSON text the first time a handler reads it
/// (command handlers never do: they get the text).
final class LazyParam: Sendable {
    private let text: String
    private let parsed = Mutex<JSONValue?>(nil)

    init(text: String) {
        self.text = text
    }

    var value: JSONValue {
        parsed.withLock { cached in
            if let cached { return cached }
            let value = JSONValue(parsing: text) ?? .object([:])
            cached = value
            return value
        }
    }
}

/// Progress reported by a running Swift handler.
package final class TaskProgress: Sendable {
    package struct Snapshot: Sendable, Equatable, Encodable {
        package var fraction: Double
        package var message: String?
    }

    private let state = Mutex<Snapshot?>(nil)

    package init() {}

    func set(fraction: Double, message: String?) {
        let clamped = fraction.isNaN ? 0 : min(1, max(0, fraction))
        state.withLock { $0 = Snapshot(fraction: clamped, message: message) }
    }

    package var snapshot: Snapshot? { state.withLock { $0 } }
}

/// A swift-log handler writing `time level message metadata` lines into a task's log.
struct TaskLogHandler: LogHandler {
    let log: TaskLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }.filter { $0.key != "task" }
        let fields = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        log.write("\(time) \(event.level) \(event.message)\(fields)")
    }
}

extension JSONValue {
    /// The JSON type's name, for messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
