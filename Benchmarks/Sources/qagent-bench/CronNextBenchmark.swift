import Foundation
import QScheduleAgent

/// Cost of one next-fire computation, against Foundation's `Calendar.nextDate` where the
/// expression can be said as `DateComponents`.
enum CronNextBenchmark {
    struct Case {
        var name: String
        var expression: String
        var zone: String
        /// The same schedule for Foundation's calendar search, when it can express it.
        var components: DateComponents?
    }

    static let cases: [Case] = [
        Case(name: "typical: daily 09:30 (seed)", expression: "0 30 9 * * ?", zone: "Asia/Shanghai", components: DateComponents(hour: 9, minute: 30, second: 0)),
        Case(name: "typical: every 15 s", expression: "*/15 * * * * ?", zone: "UTC", components: nil),
        Case(name: "typical: weekdays 9-17 every 5 min", expression: "0 0/5 9-17 ? * MON-FRI", zone: "America/New_York", components: nil),
        Case(name: "typical: 1st of month 00:00", expression: "0 0 0 1 * ?", zone: "UTC", components: DateComponents(day: 1, hour: 0, minute: 0, second: 0)),
        Case(name: "worst: fifth Monday of February", expression: "0 0 12 ? 2 2#5", zone: "UTC", components: nil),
        Case(name: "worst: Feb 29 (leap years)", expression: "0 0 12 29 2 ?", zone: "Europe/London", components: DateComponents(month: 2, day: 29, hour: 12, minute: 0, second: 0)),
        Case(name: "worst: never (5th Sunday of Feb 2024-30)", expression: "0 0 12 ? 2 1#5 2024-2030", zone: "UTC", components: nil),
        Case(name: "worst: last weekday, DST zone", expression: "0 30 2 LW * ?", zone: "America/New_York", components: nil),
    ]

    static func run(iterations: Int) {
        print("next-fire cost per call (\(iterations) calls each, start instants spread over 2024-2034)")
        print(pad("expression", 42) + pad("qagent ns/call", 16) + pad("Foundation ns/call", 20) + "ratio")
        for item in cases {
            let cron = try! CronExpression(item.expression)
            let zone = TimeZone(identifier: item.zone)!
            let starts = (0..<1024).map { Date(timeIntervalSince1970: 1_704_067_200 + Double($0) * 311_227.3) }
            var sink = 0.0
            let ours = measure(iterations) { index in
                sink += cron.next(after: starts[index & 1023], in: zone)?.timeIntervalSince1970 ?? 0
            }
            var theirs: Double?
            if let components = item.components {
                var calendar = Calendar(identifier: .gregorian)
                calendar.timeZone = zone
                let count = max(1, iterations / 10)
                theirs = measure(count) { index in
                    sink += calendar.nextDate(after: starts[index & 1023], matching: components, matchingPolicy: .strict)?.timeIntervalSince1970 ?? 0
                }
            }
            let ratio = theirs.map { String(format: "%.2fx faster", $0 / ours) } ?? "-"
            print(pad(item.name, 42) + pad(String(format: "%.0f", ours), 16) + pad(theirs.map { String(format: "%.0f", $0) } ?? "n/a", 20) + ratio)
            if sink == 42 { print("") }
        }
        print("target: well under 10000 ns per call")
    }

    static func measure(_ iterations: Int, _ body: (Int) -> Void) -> Double {
        for index in 0..<min(1000, iterations) { body(index) }
        let start = DispatchTime.now().uptimeNanoseconds
        for index in 0..<iterations { body(index) }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
