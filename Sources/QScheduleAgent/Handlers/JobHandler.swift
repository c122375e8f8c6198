import Foundation

/// A job handler compiled into the agent: `import QScheduleAgent`, conform, register.
///
/// A handler that returns normally succeeds (`lastState` 200); one that throws fails (500).
/// Handlers should honour task cancellation (`Task.isCancelled`, `try Task.checkCancellation()`):
/// the agent cancels the task on timeout or kill.
public protocol JobHandler: Sendable {
    /// Runs one task.
    func run(_ context: TaskContext) async throws
}

/// A ``JobHandler`` made from a closure, for the simple case.
public struct ClosureJobHandler: JobHandler {
    private let body: @Sendable (TaskContext) async throws -> Void

    /// Wraps `body` as a handler.
    public init(_ body: @escaping @Sendable (TaskContext) async throws -> Void) {
        self.body = body
    }

    public func run(_ context: TaskContext) async throws {
        try await body(context)
    }
}

/// The handlers compiled into an agent binary, by job name.
public struct HandlerRegistry: Sendable {
    private(set) var handlers: [String: any JobHandler] = [:]

    /// An empty registry.
    public init() {}

    /// Registers `handler` for jobs named `name`; a later registration replaces an earlier one.
    public mutating func register(_ name: String, _ handler: some JobHandler) {
        handlers[name] = handler
    }

    /// Registers a closure for jobs named `name`.
    public mutating func register(_ name: String, _ body: @escaping @Sendable (TaskContext) async throws -> Void) {
        handlers[name] = ClosureJobHandler(body)
    }

    /// Registers a synchronous closure for jobs named `name`, run like the asynchronous one
    /// (on the cooperative pool): for short work that does not block its thread. Work that
    /// blocks goes to ``register(_:blocking:)``.
    public mutating func register(_ name: String, _ body: @escaping @Sendable (TaskContext) throws -> Void) {
        handlers[name] = ClosureJobHandler { context in try body(context) }
    }

    /// Registers a synchronous closure that blocks its thread (synchronous I/O, `sleep`, a C
    /// library) for jobs named `name`: it runs whole on the agent's `blocking_threads` pool,
    /// never on the cooperative pool that serves requests (see ``TaskContext/blocking(_:)``).
    /// Cancellation is checked when it returns.
    ///
    /// Only with the label written out, `register(name, blocking: { ... })`: a trailing
    /// closure, `register(name) { ... }`, is a plain closure handler even when its body is
    /// synchronous. (Swift lets a trailing closure fill a labelled parameter: before the
    /// synchronous overload above, every synchronous trailing closure went to the blocking
    /// pool, an extra thread hop per task that nobody asked for.)
    @_disfavoredOverload
    public mutating func register(_ name: String, blocking body: @escaping @Sendable (TaskContext) throws -> Void) {
        handlers[name] = ClosureJobHandler { context in
            try await context.blocking { try body(context) }
        }
    }

    /// The handler registered under `name`.
    public func handler(named name: String) -> (any JobHandler)? {
        handlers[name]
    }
}
