import ArgumentParser
import Foundation

/// `qagent cron next`: check a Quartz expression before deploying it.
struct CronCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cron",
        abstract: "Work with Quartz cron expressions.",
        subcommands: [Next.self])

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "next",
            abstract: "Print the next fire times of a Quartz cron expression.",
            discussion: """
                Prints one line per fire time: epoch milliseconds and ISO-8601 with the zone's offset. Exit status: 0 printed (or it never fires again: says so), 2 the expression or an option is invalid.
                """)

        // `.allUnrecognized`: an expression starting with "-" ("-5 * * * * ?") is still the
        // expression (and then reported invalid), never taken for an unknown option.
        @Argument(parsing: .allUnrecognized, help: "The expression, quoted: \"0 30 9 * * ?\".")
        var words: [String] = []

        var expression: String { words.joined(separator: " ") }

        @Option(help: "Start after this instant: epoch milliseconds or ISO-8601 (default: now).")
        var after: String?

        @Option(help: "IANA time zone (default: the system's).")
        var tz: String?

        @Option(help: "How many fire times to print.")
        var count: Int = 5

        func run() async throws {
            guard !words.isEmpty else {
                print("qagent cron: missing expression, e.g. qagent cron next \"0 30 9 * * ?\"")
                throw ExitCode(2)
            }
            let zone: TimeZone
            if let tz {
                guard let named = TimeZone(identifier: tz) else {
                    print("qagent cron: unknown time zone \"\(tz)\"")
                    throw ExitCode(2)
                }
                zone = named
            } else {
                zone = .current
            }
            var start = Date()
            if let after {
                guard let parsed = Self.parseInstant(after) else {
                    print("qagent cron: --after must be epoch milliseconds or ISO-8601, got \"\(after)\"")
                    throw ExitCode(2)
                }
                start = parsed
            }
            guard (1...10_000).contains(count) else {
                print("qagent cron: --count must be from 1 to 10000")
                throw ExitCode(2)
            }
            let cron: CronExpression
            do {
                cron = try CronExpression(expression)
            } catch {
                print("qagent cron: invalid expression: \(error)")
                throw ExitCode(2)
            }
            let times = cron.nextTimes(after: start, in: zone, count: count)
            for time in times {
                print("\(time.epochMilliseconds)  \(Self.iso8601(time, zone))")
            }
            if times.count < count {
                print(times.isEmpty ? "never fires after \(Self.iso8601(start, zone))" : "never fires again")
            }
        }

        static func parseInstant(_ text: String) -> Date? {
            if let ms = Int64(text) { return Date(timeIntervalSince1970: Double(ms) / 1000) }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = formatter.date(from: text) { return date }
            formatter.formatOptions = [.withInternetDateTime]
            return formatter.date(from: text)
        }

        static func iso8601(_ date: Date, _ zone: TimeZone) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.timeZone = zone
            formatter.formatOptions = [.withInternetDateTime]
            return formatter.string(from: date)
        }
    }
}
