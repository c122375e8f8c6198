/// A handler whose param is decoded into a `Codable` type first (the typed layer over
/// ``JobHandler``). A param that does not decode fails the task (500) with a message naming
/// the key.
///
/// ```swift
/// struct Export: TypedJobHandler {
///     struct Param: Decodable, Sendable { var table: String; var full: Bool? }
///     func run(_ param: Param, context: TaskContext) async throws { ... }
/// }
/// handlers.register("nightly.export", Export())
/// ```
public protocol TypedJobHandler: Sendable {
    associatedtype Param: Decodable & Sendable
    /// Runs one task with its decoded param.
    func run(_ param: Param, context: TaskContext) async throws
}

/// Adapts a ``TypedJobHandler`` to the raw ``JobHandler``.
package struct TypedJobHandlerAdapter<Handler: TypedJobHandler>: JobHandler {
    let handler: Handler

    package init(handler: Handler) {
        self.handler = handler
    }

    package func run(_ context: TaskContext) async throws {
        try await handler.run(try context.decodeParam(Handler.Param.self), context: context)
    }
}

/// A typed handler made from a closure.
struct TypedClosureHandler<Param: Decodable & Sendable>: TypedJobHandler {
    let body: @Sendable (Param, TaskContext) async throws -> Void

    func run(_ param: Param, context: TaskContext) async throws {
        try await body(param, context)
    }
}

extension HandlerRegistry {
    /// Registers a typed handler for jobs named `name`.
    public mutating func register<Handler: TypedJobHandler>(_ name: String, _ handler: Handler) {
        register(name, TypedJobHandlerAdapter(handler: handler))
    }

    /// Registers a closure taking the decoded param, for jobs named `name`.
    public mutating func register<Param: Decodable & Sendable>(
        _ name: String, param: Param.Type, _ body: @escaping @Sendable (Param, TaskContext) async throws -> Void
    ) {
        register(name, TypedClosureHandler(body: body))
    }
}
