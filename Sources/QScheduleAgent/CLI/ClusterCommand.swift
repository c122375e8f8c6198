import ArgumentParser
import Foundation
import Logging

/// `qagent cluster status`: the cluster as its database sees it.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect the cluster this agent's [cluster] database holds.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Members, heartbeat ages, draining, jobs, and jobs defined differently between hosts.",
            discussion: "Reads the database named by [cluster] in --config. Exit status: 0 printed, 2 error.")

        @OptionGroup var options: ConfigOption

        func run() async throws {
            let settings: ClusterSettings
            do {
                guard let cluster = try options.load().cluster else {
                    print("qagent cluster: \(options.config) has no [cluster] table")
                    throw ExitCode(2)
                }
                settings = cluster
            } catch let error as ConfigError {
                print("qagent cluster: \(error)")
                throw ExitCode(2)
            }
            var quiet = Logger(label: "qagent")
            quiet.logLevel = .error
            let logger = quiet
            let database = ClusterDatabase(settings: settings, logger: logger)
            do {
                let status = try await database.withRunningClient { client in
                    try await ClusterDatabase.withTimeout(20, what: "reading \(settings.displayURL)") {
                        try await ClusterStatus.read(client, deadAfter: settings.deadAfter, logger: logger)
                    }
                }
                print(status.text)
            } catch {
                print("qagent cluster: \(ClusterError.describing(error, "cluster status", settings: settings))")
                throw ExitCode(2)
            }
        }
    }
}
