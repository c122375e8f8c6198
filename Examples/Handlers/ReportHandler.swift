import QScheduleAgent

/// A typed handler: its param is decoded into `Param` before `run` is called; it reports
/// progress and honours cancellation (timeout, kill) between steps.
public struct ReportHandler: TypedJobHandler {
    public struct Param: Decodable, Sendable {
        public var region: String
        public var days: Int?
    }

    /// How long one day's step takes.
    public var stepDuration: Duration

    public init(stepDuration: Duration = .milliseconds(200)) {
        self.stepDuration = stepDuration
    }

    public func run(_ param: Param, context: TaskContext) async throws {
        let days = param.days ?? 7
        context.logger.info("building report", metadata: ["region": "\(param.region)", "days": "\(days)"])
        for day in 1...max(days, 1) {
            try context.checkCancellation()  // honour timeout and kill
            try await Task.sleep(for: stepDuration)
            context.progress(Double(day) / Double(days), "day \(day) of \(days)")
        }
        context.logger.info("report ready")
    }
}
