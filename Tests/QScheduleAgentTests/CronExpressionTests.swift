import Foundation
import Testing
@testable import QScheduleAgent

@Suite("Cron expressions")
struct CronExpressionTests {
    @Test("invalid expressions name the field and the offending token", arguments: [
        ("0 0 12 * *", "expression", "0 0 12 * *"),
        ("0 0 12 * * ? 2024 x", "expression", "0 0 12 * * ? 2024 x"),
        ("60 0 12 * * ?", "seconds", "60"),
        ("0 60 12 * * ?", "minutes", "60"),
        ("0 0 24 * * ?", "hours", "24"),
        ("0 0 12 32 * ?", "day-of-month", "32"),
        ("0 0 12 0 * ?", "day-of-month", "0"),
        ("0 0 12 * 13 ?", "month", "13"),
        ("0 0 12 * FOO ?", "month", "FOO"),
        ("0 0 12 ? * 8", "day-of-week", "8"),
        ("0 0 12 ? * 0", "day-of-week", "0"),
        ("0 0 12 ? * FUN", "day-of-week", "FUN"),
        ("0 0 12 * * *", "day-of-week", "*"),
        ("0 0 12 ? * ?", "day-of-week", "?"),
        ("0 0 12 1 * MON", "day-of-week", "MON"),
        ("0/0 * * * * ?", "seconds", "0/0"),
        ("0/60 * * * * ?", "seconds", "0/60"),
        ("0 0 0/24 * * ?", "hours", "0/24"),
        ("1/2/3 * * * * ?", "seconds", "1/2/3"),
        ("a * * * * ?", "seconds", "A"),
        ("1, * * * * ?", "seconds", "1,"),
        ("- * * * * ?", "seconds", "-"),
        ("? * * * * ?", "seconds", "?"),
        ("L * * * * ?", "seconds", "L"),
        ("0 0 12 L,15 * ?", "day-of-month", "L,15"),
        ("0 0 12 L-31 * ?", "day-of-month", "L-31"),
        ("0 0 12 L-31W * ?", "day-of-month", "L-31W"),
        ("0 0 12 L-W * ?", "day-of-month", "L-W"),
        ("0 0 12 L-2WW * ?", "day-of-month", "L-2WW"),
        ("0 0 12 32W * ?", "day-of-month", "32W"),
        ("0 0 12 ? * 6#6", "day-of-week", "6#6"),
        ("0 0 12 ? * 6#0", "day-of-week", "6#0"),
        ("0 0 12 ? * 8L", "day-of-week", "8L"),
        ("0 0 12 ? * 2#1,3", "day-of-week", "2#1,3"),
        ("0 0 12 1 1 ? 1969", "year", "1969"),
        ("0 0 12 1 1 ? 2100", "year", "2100"),
        ("0 0 12 1 1 ? 2030-2025", "year", "2030-2025"),
    ])
    func rejects(text: String, field: String, token: String) {
        do {
            _ = try CronExpression(text)
            Issue.record("\(text) was accepted")
        } catch let error as CronExpression.ParseError {
            #expect(error.field == field, "\(text): \(error)")
            #expect(error.token == token, "\(text): \(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("an invalid cron in agent.conf is a config error naming the job, line, field and token")
    func configError() {
        let text = "[agent]\ntoken = \"0123456789abcdef\"\n[[job]]\nname = \"nightly\"\ncron = \"0 0 25 * * ?\"\ncommand = [\"/bin/true\"]\n"
        #expect(throws: ConfigError.self) { try ConfigLoader.parse(text) }
        do {
            _ = try ConfigLoader.parse(text)
        } catch {
            #expect("\(error)" == #"agent.conf:5: [[job]] "nightly" cron: hours: 25 is outside 0-23: "25""#)
        }
    }

    /// A deterministic generator (SplitMix64) so failures reproduce.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func randomField(_ range: ClosedRange<Int>, _ random: inout Random) -> String {
        let a = Int.random(in: range, using: &random)
        let b = Int.random(in: range, using: &random)
        switch Int.random(in: 0..<7, using: &random) {
        case 0: return "*"
        case 1: return String(a)
        case 2: return "\(a)-\(b)"
        case 3: return "\(a)/\(Int.random(in: 1...max(1, range.upperBound), using: &random))"
        case 4: return "*/\(Int.random(in: 1...max(1, range.upperBound), using: &random))"
        case 5: return "\(a),\(b)"
        default: return "\(min(a, b))-\(max(a, b))/\(Int.random(in: 1...3, using: &random))"
        }
    }

    static func randomExpression(_ random: inout Random) -> String {
        let dayField: (String, String)
        switch Int.random(in: 0..<8, using: &random) {
        case 0: dayField = ("L", "?")
        case 1: dayField = ("LW", "?")
        case 2: dayField = ("\(Int.random(in: 1...31, using: &random))W", "?")
        case 3: dayField = ("L-\(Int.random(in: 0...5, using: &random))", "?")
        case 4: dayField = ("?", "\(Int.random(in: 1...7, using: &random))L")
        case 5: dayField = ("?", "\(Int.random(in: 1...7, using: &random))#\(Int.random(in: 1...5, using: &random))")
        case 6: dayField = ("?", randomField(1...7, &random))
        default: dayField = (randomField(1...31, &random), "?")
        }
        return [randomField(0...59, &random), randomField(0...59, &random), randomField(0...23, &random),
                dayField.0, randomField(1...12, &random), dayField.1].joined(separator: " ")
    }

    @Test("property: for random valid expressions, each next time matches the expression and the times strictly increase")
    func properties() throws {
        var random = Random(state: 20_261_124)
        let zones = ["UTC", "Asia/Shanghai", "Asia/Kolkata"].map { TimeZone(identifier: $0)! }
        var checked = 0
        for _ in 0..<400 {
            let text = Self.randomExpression(&random)
            let cron = try CronExpression(text)
            let zone = zones[Int.random(in: 0..<zones.count, using: &random)]
            var cursor = Date(timeIntervalSince1970: Double(Int.random(in: 0...4_000_000_000, using: &random)) + 0.25)
            for _ in 0..<5 {
                guard let next = cron.next(after: cursor, in: zone) else { break }
                #expect(next > cursor, "\(text)")
                #expect(next.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) == 0, "\(text)")
                let wall = ZoneClock(timeZone: zone).civil(atSecond: Int64(next.timeIntervalSince1970))
                #expect(cron.matches(wall), "\(text) fired at \(wall) which does not match")
                // Nothing matches in between (checked second by second over short gaps).
                if next.timeIntervalSince(cursor) < 600 {
                    var probe = Int64(cursor.timeIntervalSince1970.rounded(.down)) + 1
                    while probe < Int64(next.timeIntervalSince1970) {
                        #expect(!cron.matches(ZoneClock(timeZone: zone).civil(atSecond: probe)), "\(text) skipped \(probe)")
                        probe += 1
                    }
                }
                cursor = next
                checked += 1
            }
        }
        #expect(checked > 1000)
    }

    @Test("civil calendar arithmetic agrees with Foundation's Gregorian calendar")
    func civilCalendar() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var random = Random(state: 7)
        for _ in 0..<2000 {
            let seconds = Int64.random(in: -2_000_000_000...5_000_000_000, using: &random)
            let civil = CivilTime(secondsAsUTC: seconds)
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: Date(timeIntervalSince1970: Double(seconds)))
            #expect([civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second] == [c.year, c.month, c.day, c.hour, c.minute, c.second])
            #expect(CivilTime.weekday(year: civil.year, month: civil.month, day: civil.day) == c.weekday)
            #expect(civil.secondsAsUTC == seconds)
        }
    }
}
