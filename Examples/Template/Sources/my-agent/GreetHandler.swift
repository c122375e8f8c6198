import QScheduleAgent

/// Greets `name`, `times` times, into the task's log.
struct GreetHandler: TypedJobHandler {
    struct Param: Decodable, Sendable {
        var name: String
        var times: Int?
    }

    func run(_ param: Param, context: TaskContext) async throws {
        let times = param.times ?? 1
        for round in 1...max(times, 1) {
            try context.checkCancellation()  // a kill or the job's timeout stops the task here
            context.logger.info("hello, \(param.name)")
            context.progress(Double(round) / Double(times))
        }
    }
}
