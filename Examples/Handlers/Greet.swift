import QScheduleAgent

/// A closure handler with untyped param access: each getter throws an error naming the key
/// when it is missing or mistyped, and the task fails with that message.
public let greet: @Sendable (TaskContext) async throws -> Void = { context in
    let name = try context.optionalString("name") ?? "world"
    let times = try context.optionalInt("times") ?? 1
    for _ in 0..<times { context.log.write("hello, \(name)") }
}
