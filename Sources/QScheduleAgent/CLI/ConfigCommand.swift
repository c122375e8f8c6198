import ArgumentParser
import Foundation

/// `qagent config check [--config F]`: validates agent.conf without starting the agent.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check agent.conf.",
        subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate agent.conf without starting: every key, every command's program (executable by its user), data_dir, stored on/off state that overrides `enabled`.",
            discussion: "Prints each finding as file:line: warning|error: text. Exit status: 0 fine, 1 warnings only, 2 errors.")

        @OptionGroup var options: ConfigOption

        func run() async throws {
            guard ConfigPath.resolve(options.explicit) != nil else {
                printError("no configuration file: neither ./agent.conf nor /etc/qagent/agent.conf exists; pass --config FILE")
                throw ExitCode(2)
            }
            let (config, findings) = ConfigCheck.check(path: options.config, handlers: QAgent.handlers)
            for finding in findings { print(finding.description) }
            let errors = findings.filter { $0.severity == .error }.count
            let warnings = findings.count - errors
            if errors > 0 {
                print("\(options.config): \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
                throw ExitCode(2)
            }
            let jobs = config?.jobs.count ?? 0
            if warnings > 0 {
                print("\(options.config): \(jobs) job\(jobs == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
                throw ExitCode(1)
            }
            print("\(options.config): ok, \(jobs) job\(jobs == 1 ? "" : "s")")
        }
    }
}
