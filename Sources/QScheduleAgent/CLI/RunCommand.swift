import ArgumentParser
import Foundation
import Logging

/// `qagent run`: the agent itself, in the foreground, until SIGTERM/SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent in the foreground.",
        discussion: "Exit status: 0 after a clean shutdown, 2 when the configuration or store is unusable, the listen address cannot be bound, or the cluster database is unusable.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text, or json (one object per line, for journald and log shippers). Default: [agent] log_format, else text.")
    var logFormat: LogFormat?

    func run() async throws {
        let config: AgentConfig
        do {
            config = try options.load()
        } catch {
            FileHandle.standardError.write(Data("qagent: \(error)\n".utf8))
            throw ExitCode(2)
        }
        (logFormat ?? config.agent.logFormat).bootstrap(level: logLevel)
        let logger = Logger(label: "qagent")
        for warning in config.warnings { logger.warning("\(warning)") }
        let agent: Agent
        do {
            agent = try Agent(config: config, handlers: QAgent.handlers, logger: logger, configPath: options.config)
        } catch {
            FileHandle.standardError.write(Data("qagent: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let identity = agent.identity
        do {
            try await agent.run { port in
                logger.info("qagent listening", metadata: ["address": "\(identity.ipText):\(port)", "data_dir": "\(agent.config.agent.dataDir)"])
            }
        } catch where error is ListenError || error is ClusterError {
            FileHandle.standardError.write(Data("qagent: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
