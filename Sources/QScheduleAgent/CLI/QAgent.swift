import ArgumentParser
import Foundation
import Logging

/// The entry point of a qagent binary.
///
/// The stock `qagent` calls `await QAgent.main()`. A handler author's binary registers its
/// Swift handlers and calls the same entry, and so gets the whole CLI:
///
/// ```swift
/// import QScheduleAgent
///
/// var handlers = HandlerRegistry()
/// handlers.register("billing.close-day") { context in
///     context.log.write("closing \(context.param)")
/// }
/// await QAgent.main(handlers: handlers)
/// ```
public enum QAgent {
    @TaskLocal static var handlers = HandlerRegistry()

    /// Parses the command line and runs the chosen command; exits the process when done.
    public static func main(handlers: HandlerRegistry = HandlerRegistry()) async {
        await $handlers.withValue(handlers) {
            await QAgentCommand.main()
        }
    }
}

struct QAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qagent",
        abstract: "The QSchedule worker-side agent: runs this host's jobs and serves the seed interface for it.",
        version: AgentVersion.current,
        subcommands: [
            RunCommand.self, CheckCommand.self, DrainCommand.self, ResumeCommand.self, StatusCommand.self,
            JobsCommand.self, TriggerCommand.self, WorkersCommand.self, TasksCommand.self, CronCommand.self, ClusterCommand.self, ConfigCommand.self, ReloadCommand.self,
        ],
        defaultSubcommand: nil)
}

/// Options shared by commands that read `agent.conf`.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Path to agent.conf.")
    var config: String = "/etc/qagent/agent.conf"

    func load() throws -> AgentConfig {
        try ConfigLoader.load(path: config)
    }
}
