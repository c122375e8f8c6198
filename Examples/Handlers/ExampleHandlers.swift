import QScheduleAgent

/// The example handlers, as `qagent-example` registers them (`Examples/example-agent.conf`
/// configures their jobs).
public enum ExampleHandlers {
    public static var registry: HandlerRegistry {
        var handlers = HandlerRegistry()
        handlers.register("example.report", ReportHandler())
        handlers.register("example.greet", greet)
        handlers.register("example.lines", LineCountHandler())
        handlers.register("example.compress", CompressHandler())
        return handlers
    }
}
