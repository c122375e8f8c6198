import Foundation
import Testing
@testable import QScheduleAgent

/// The DST rule checked by brute force around every transition of seven zones, 2000-2045:
/// walking the instants second by second, a matching wall time fires at the first instant
/// whose wall clock shows it or later. The expected fires come from that walk (wall times
/// from Foundation's offsets and a predicate written out per expression), never from the
/// engine; the engine's fires must equal them exactly — so fires are strictly increasing,
/// every existing matching time fires exactly once, and every missing one fires at its gap's
/// transition. Windows are 70 minutes each side of a transition (every zone here moves its
/// clock by at most an hour); serialized, so that it leaves a core to the timing-sensitive
/// suites running beside it.
@Suite("Cron DST properties", .serialized)
struct CronDSTPropertyTests {
    static let zones = [
        "America/New_York", "Europe/London", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe",
        "Pacific/Chatham", "America/Sao_Paulo",
    ]

    /// Expressions with their match written independently of the engine (sec, min, hour).
    static let expressions: [(String, @Sendable (Int, Int, Int) -> Bool)] = [
        ("0 */15 * * * ?", { s, m, _ in s == 0 && m % 15 == 0 }),
        ("59 59 1 * * ?", { s, m, h in s == 59 && m == 59 && h == 1 }),
        ("59 * 1 * * ?", { s, _, h in s == 59 && h == 1 }),
        ("0 14,32,35 2 * * ?", { s, m, h in s == 0 && [14, 32, 35].contains(m) && h == 2 }),
        ("0 30 2 * * ?", { s, m, h in s == 0 && m == 30 && h == 2 }),
        ("30 45 0,23 * * ?", { s, m, h in s == 30 && m == 45 && (h == 0 || h == 23) }),
    ]

    /// Every transition of `zone` between 2000 and 2045.
    static func transitions(_ zone: TimeZone) -> [Int64] {
        var result: [Int64] = []
        var cursor = Date(timeIntervalSince1970: 946_684_800)  // 2000-01-01
        let end = Date(timeIntervalSince1970: 2_366_841_600)   // 2045-01-01
        while let next = zone.nextDaylightSavingTimeTransition(after: cursor), next < end {
            result.append(Int64(next.timeIntervalSince1970))
            cursor = next
        }
        return result
    }

    @Test("around every transition 2000-2045, fires equal the brute-force walk", arguments: zones)
    func transitionsMatchWalk(zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        let transitions = Self.transitions(zone)
        #expect(transitions.count >= 10, "\(zoneName): \(transitions.count) transitions")
        func wall(_ t: Int64) -> Int64 { t + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t)))) }
        // Which seconds of the day match, per expression, from the written-out predicates.
        let tables = Self.expressions.map { _, predicate in (0..<86_400).map { predicate($0 % 60, $0 / 60 % 60, $0 / 3600) } }
        func daySecond(_ wallSeconds: Int64) -> Int { Int(((wallSeconds % 86_400) + 86_400) % 86_400) }
        var checked = 0
        for transition in transitions {
            let from = transition - 70 * 60
            let to = transition + 70 * 60
            let walls = (from...to).map(wall)
            for ((text, _), table) in zip(Self.expressions, tables) {
                let cron = try CronExpression(text)
                // Expected: walk every second, tracking the latest wall time shown so far; an
                // instant fires when a matching wall time is shown for the first time.
                var expected: [Int64] = []
                var latest = walls[0]
                for index in 1..<walls.count where walls[index] > latest {
                    var candidate = latest + 1
                    while candidate <= walls[index] {
                        if table[daySecond(candidate)] {
                            expected.append(from + Int64(index))
                            break
                        }
                        candidate += 1
                    }
                    latest = walls[index]
                }
                var fires: [Int64] = []
                var cursor = Date(timeIntervalSince1970: TimeInterval(from))
                while let next = cron.next(after: cursor, in: zone), Int64(next.timeIntervalSince1970) <= to {
                    fires.append(Int64(next.timeIntervalSince1970))
                    cursor = next
                }
                #expect(fires == expected, "\(zoneName) \(text) around \(Date(timeIntervalSince1970: TimeInterval(transition)))")
                checked += 1
            }
        }
        print("\(zoneName): \(transitions.count) transitions, \(checked) windows checked")
    }
}
