// An agent binary with two Swift handlers compiled in. It has the whole qagent CLI:
//   swift run qagent-example run --config Examples/example-agent.conf
import Foundation
import QScheduleAgent

/// A typed handler: the param is decoded into `Param` before `run` is called.
struct ReportHandler: TypedJobHandler {
    struct Param: Decodable, Sendable {
        var region: String
        var days: Int?
    }

    func run(_ param: Param, context: TaskContext) async throws {
        let days = param.days ?? 7
        context.logger.info("building report", metadata: ["region": "\(param.region)", "days": "\(days)"])
        for day in 1...days {
            try context.checkCancellation()  // honour timeout and kill
            try await Task.sleep(for: .milliseconds(200))
            context.progress(Double(day) / Double(days), "day \(day) of \(days)")
        }
        context.logger.info("report ready")
    }
}

var handlers = HandlerRegistry()
handlers.register("example.report", ReportHandler())
handlers.register("example.greet") { context in
    // Untyped access: each getter throws an error naming the key when it is missing or mistyped.
    let name = try context.optionalString("name") ?? "world"
    let times = try context.optionalInt("times") ?? 1
    for _ in 0..<times { context.log.write("hello, \(name)") }
}
await QAgent.main(handlers: handlers)
