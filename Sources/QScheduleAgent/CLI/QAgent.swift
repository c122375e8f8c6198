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

    /// The same with explicit arguments (`["run", "--config", "agent.conf"]`), for a binary
    /// that has commands of its own besides qagent's.
    public static func main(arguments: [String], handlers: HandlerRegistry = HandlerRegistry()) async {
        await $handlers.withValue(handlers) {
            await QAgentCommand.main(arguments)
        }
    }
}

struct QAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qagent",
        abstract: "The QSchedule worker-side agent: runs this host's jobs and serves the seed interface for it.",
        version: AgentVersion.description,
        subcommands: [
            RunCommand.self, CheckCommand.self, DrainCommand.self, ResumeCommand.self, StatusCommand.self,
            JobsCommand.self, TriggerCommand.self, WorkersCommand.self, TasksCommand.self, CronCommand.self, ClusterCommand.self, ConfigCommand.self, ReloadCommand.self,
        ],
        defaultSubcommand: nil)
}

/// Options shared by commands that read `agent.conf`.
struct ConfigOption: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: ArgumentHelp(ConfigPath.help, valueName: "file"))
    var explicit: String?

    /// The file in use (see ``ConfigPath``).
    var config: String { ConfigPath.resolve(explicit) ?? ConfigPath.candidates.last! }

    func load() throws -> AgentConfig {
        try ConfigPath.load(explicit)
    }
}

/// Where a command finds `agent.conf`: `--config`, else `./agent.conf` when it exists, else
/// `/etc/qagent/agent.conf`; when neither exists, the error names both.
enum ConfigPath {
    static let candidates = ["agent.conf", "/etc/qagent/agent.conf"]
    static let help = "Path to agent.conf (default: ./agent.conf if it exists, else /etc/qagent/agent.conf)."

    /// `explicit`, else the first candidate that exists, else `nil`.
    static func resolve(_ explicit: String?) -> String? {
        if let explicit { return explicit }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    static func load(_ explicit: String?) throws -> AgentConfig {
        guard let path = resolve(explicit) else {
            throw ConfigError("no configuration file: neither ./agent.conf nor /etc/qagent/agent.conf exists; pass --config FILE")
        }
        return try ConfigLoader.load(path: path)
    }
}
