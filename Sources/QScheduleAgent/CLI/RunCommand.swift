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

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "qagent")
        let agent: Agent
        do {
            agent = try Agent(config: try options.load(), handlers: QAgent.handlers, logger: logger)
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
