import Foundation
import Testing
@testable import QScheduleAgent

/// The cron engine against Quartz 2.3.2 itself (Debian's `libquartz2-java`, run through
/// `Tests/Tools/QuartzNext.java`): thousands of random expressions in zones without DST must
/// give Quartz's next fire times exactly, and each deliberate difference (README, "Differences
/// from Quartz") is checked to be what it says, on both sides.
///
/// CI installs Java and Quartz and sets `QAGENT_REQUIRE_QUARTZ=1`, so there this suite can
/// never be skipped silently.
@Suite("Cron against Quartz 2.3.2", .serialized)
struct CronQuartzDifferentialTests {
    static let jar = "/usr/share/java/quartz2.jar"
    static var available: Bool {
        FileManager.default.fileExists(atPath: jar) && FileManager.default.isExecutableFile(atPath: "/usr/bin/java")
    }
    static var required: Bool { ProcessInfo.processInfo.environment["QAGENT_REQUIRE_QUARTZ"] == "1" }

    /// One query: the next `count` fire times after `after` (epoch ms) in `zone`.
    struct Query: Hashable {
        var expression: String
        var after: Int64
        var zone: String
        var count: Int
    }

    /// Quartz's answer per query: fire times, `[]` for never, `nil` when it refuses the expression.
    static func quartz(_ queries: [Query]) throws -> [[Int64]?] {
        let input = queries.map { "\($0.expression)\t\($0.after)\t\($0.zone)\t\($0.count)" }.joined(separator: "\n") + "\n"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("quartz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputURL = folder.appendingPathComponent("in.txt")
        let outputURL = folder.appendingPathComponent("out.txt")
        try input.write(to: inputURL, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/java")
        process.arguments = ["-cp", jar, ConfigLoaderTests.repositoryRoot.appendingPathComponent("Tests/Tools/QuartzNext.java").path]
        process.standardInput = try FileHandle(forReadingFrom: inputURL)
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        try process.run()
        process.waitUntilExit()
        let lines = try String(contentsOf: outputURL, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        guard process.terminationStatus == 0, lines.count >= queries.count else {
            throw AgentProcessError(description: "QuartzNext exited \(process.terminationStatus) with \(lines.count) lines for \(queries.count) queries")
        }
        return lines.prefix(queries.count).map { line in
            if line.hasPrefix("error") { return nil }
            if line == "never" { return [] }
            return line.split(separator: " ").compactMap { Int64($0) }
        }
    }

    /// Ours, same shape.
    static func ours(_ query: Query) -> [Int64]? {
        guard let cron = try? CronExpression(query.expression), let zone = TimeZone(identifier: query.zone) else { return nil }
        return cron.nextTimes(after: Date(timeIntervalSince1970: Double(query.after) / 1000), in: zone, count: query.count).map(\.epochMilliseconds)
    }

    /// A random Quartz expression from the grammar both sides accept.
    static func randomExpression(_ rng: inout some RandomNumberGenerator) -> String {
        func pick<T>(_ options: [T]) -> T { options.randomElement(using: &rng)! }
        func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
        func timeField(_ max: Int) -> String {
            switch number(0...7) {
            case 0: return "*"
            case 1: return "\(number(0...max))"
            case 2: let a = number(0...max); return "\(a)-\(number(a...max))"
            case 3: return "\(number(0...max))/\(number(1...max))"
            case 4: return "*/\(number(1...max))"
            case 5: let a = number(0...max); return "\(a)-\(number(a...max))/\(number(1...max))"
            case 6: return (0..<number(2...4)).map { _ in "\(number(0...max))" }.joined(separator: ",")
            default: return "\(number(0...max))"
            }
        }
        let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        let weekdays = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        let month: String
        switch number(0...4) {
        case 0, 1: month = "*"
        case 2: let a = number(1...12); month = "\(a)-\(number(a...12))"
        case 3: month = "\(pick(months))"
        default: month = "\(number(1...12))/\(number(1...6))"
        }
        var dayOfMonth = "?"
        var dayOfWeek = "?"
        if number(0...1) == 0 {
            switch number(0...9) {
            case 0: dayOfMonth = "*"
            case 1: dayOfMonth = "\(number(1...28))"
            case 2: let a = number(1...28); dayOfMonth = "\(a)-\(number(a...31))"
            case 3: dayOfMonth = "\(number(1...31))/\(number(1...10))"
            case 4: dayOfMonth = "L"
            case 5: dayOfMonth = "L-\(number(0...27))"
            case 6: dayOfMonth = "LW"
            case 7: dayOfMonth = "\(number(1...28))W"
            case 8: dayOfMonth = "L-\(number(0...25))W"
            default: dayOfMonth = (0..<number(2...4)).map { _ in "\(number(1...31))" }.joined(separator: ",")
            }
        } else {
            switch number(0...7) {
            case 0: dayOfWeek = "*"
            case 1: dayOfWeek = "\(number(1...7))"
            case 2: let a = number(1...7); dayOfWeek = "\(a)-\(number(a...7))"
            case 3: let a = number(0...6); dayOfWeek = "\(weekdays[a])-\(weekdays[number(a...6)])"
            case 4: dayOfWeek = "\(number(1...7))L"
            case 5: dayOfWeek = "\(number(1...7))#\(number(1...5))"
            case 6: dayOfWeek = pick(weekdays)
            default: dayOfWeek = "\(number(1...7))/\(number(1...3))"
            }
        }
        let year = number(0...5) == 0 ? " \(number(2020...2030))-\(number(2030...2040))" : ""
        return "\(timeField(59)) \(timeField(59)) \(timeField(23)) \(dayOfMonth) \(month) \(dayOfWeek)\(year)"
    }

    @Test("2,000 random expressions in zones without DST: the same fire times as Quartz",
          .enabled(if: available || required, "needs Java and Debian's libquartz2-java"))
    func randomExpressions() throws {
        #expect(Self.available, "QAGENT_REQUIRE_QUARTZ=1 but Java or Quartz is missing")
        guard Self.available else { return }
        // Seeded, so a failure names an expression that can be run again.
        var rng = CronExpressionTests.Random(state: 20_261_125)
        let zones = ["UTC", "Asia/Shanghai", "Asia/Kolkata", "Asia/Tokyo"]
        let queries = (0..<2000).map { _ in
            Query(expression: Self.randomExpression(&rng), after: Int64.random(in: 946_684_800_000...2_208_988_800_000, using: &rng),
                  zone: zones.randomElement(using: &rng)!, count: 5)
        }
        let answers = try Self.quartz(queries)
        var differences: [String] = []
        for (query, quartz) in zip(queries, answers) {
            let ours = Self.ours(query)
            if ours != quartz { differences.append("\(query.expression) after \(query.after) in \(query.zone): Quartz \(String(describing: quartz)), qagent \(String(describing: ours))") }
        }
        let refused = answers.filter { $0 == nil }.count
        let never = answers.filter { $0 == [] }.count
        print("differential: \(queries.count) random expressions (\(refused) refused by Quartz, \(never) never fire), "
              + "\(differences.count) differ from Quartz; first: \(queries[0].expression) -> \(String(describing: answers[0]))")
        // The comparison means something only if most queries have fire times to compare.
        #expect(refused < queries.count / 10 && never < queries.count / 3)
        #expect(differences.isEmpty, "\(differences.prefix(20).joined(separator: "\n"))")
    }
}

extension CronQuartzDifferentialTests {
    /// README "Differences from Quartz", row by row: (what, query, Quartz's answer, qagent's
    /// answer); `nil` = refused as invalid, `[]` = never fires.
    static let differences: [(String, Query, [Int64]?, [Int64]?)] = [
        ("spring-forward gap: Quartz skips the day; qagent fires at the transition (03:00 EDT)",
         Query(expression: "0 30 2 * * ?", after: 1_615_654_800_000, zone: "America/New_York", count: 2),
         [1_615_789_800_000, 1_615_876_200_000], [1_615_705_200_000, 1_615_789_800_000]),
        ("fall-back overlap: Quartz fires 01:30 at its second (EST) occurrence; qagent at its first (EDT)",
         Query(expression: "0 30 1 * * ?", after: 1_636_257_600_000, zone: "America/New_York", count: 2),
         [1_636_266_600_000, 1_636_353_000_000], [1_636_263_000_000, 1_636_353_000_000]),
        ("fall-back overlap: after 01:59:59 EDT Quartz fires 01:59:59 EST again; qagent fires each wall time once",
         Query(expression: "59 59 1 * * ?", after: 1_636_264_799_000, zone: "America/New_York", count: 1),
         [1_636_268_399_000], [1_636_354_799_000]),
        ("a step after a weekday name: Quartz ignores it (every Monday); qagent honours it (MON, WED, FRI)",
         Query(expression: "0 0 12 ? * MON/2", after: 1_704_067_200_000, zone: "UTC", count: 3),
         [1_704_110_400_000, 1_704_715_200_000, 1_705_320_000_000], [1_704_110_400_000, 1_704_283_200_000, 1_704_456_000_000]),
        ("a step after a month name: Quartz ignores it (January only); qagent honours it (JAN, APR, JUL, OCT)",
         Query(expression: "0 0 12 1 JAN/3 ?", after: 1_704_067_200_000, zone: "UTC", count: 3),
         [1_704_110_400_000, 1_735_732_800_000, 1_767_268_800_000], [1_704_110_400_000, 1_711_972_800_000, 1_719_835_200_000]),
        ("nW past the month's length: Quartz fires 30W in February on some Feb 29ths; qagent never (no 30th)",
         Query(expression: "0 0 12 30W 2 ?", after: 1_704_067_200_000, zone: "UTC", count: 2),
         [2_087_899_200_000, 2_971_512_000_000], []),
        ("a step of 0: Quartz takes */0 as every second; qagent refuses it",
         Query(expression: "*/0 * * * * ?", after: 0, zone: "UTC", count: 2),
         [1000, 2000], nil),
        ("trailing garbage: Quartz ignores what follows the year; qagent refuses it",
         Query(expression: "0 0 12 1 1 ? 2024 junk", after: 0, zone: "UTC", count: 1),
         [1_704_110_400_000], nil),
    ]

    @Test("each documented difference from Quartz is exactly as documented, on both sides",
          .enabled(if: available || required, "needs Java and Debian's libquartz2-java"))
    func documentedDifferences() throws {
        #expect(Self.available, "QAGENT_REQUIRE_QUARTZ=1 but Java or Quartz is missing")
        guard Self.available else { return }
        let answers = try Self.quartz(Self.differences.map(\.1))
        for ((what, query, quartz, ours), answer) in zip(Self.differences, answers) {
            #expect(answer == quartz, "Quartz, \(what): \(String(describing: answer))")
            #expect(Self.ours(query) == ours, "qagent, \(what): \(String(describing: Self.ours(query)))")
        }
    }
}
