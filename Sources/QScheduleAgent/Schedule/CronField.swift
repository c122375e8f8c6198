/// One field of a cron expression: its name, bounds and value names, and its parser.
struct CronField: Sendable {
    let name: String
    let range: ClosedRange<Int>
    /// Stored bit = value - `bitOffset` (years are kept as offsets from 1970).
    let bitOffset: Int
    let names: [String: Int]
    /// Whether `a-b` with `b < a` wraps around (cyclic fields do; years do not).
    let wraps: Bool

    static let seconds = CronField(name: "seconds", range: 0...59, bitOffset: 0, names: [:], wraps: true)
    static let minutes = CronField(name: "minutes", range: 0...59, bitOffset: 0, names: [:], wraps: true)
    static let hours = CronField(name: "hours", range: 0...23, bitOffset: 0, names: [:], wraps: true)
    static let dayOfMonth = CronField(name: "day-of-month", range: 1...31, bitOffset: 0, names: [:], wraps: true)
    static let month = CronField(
        name: "month", range: 1...12, bitOffset: 0,
        names: ["JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12],
        wraps: true)
    static let dayOfWeek = CronField(
        name: "day-of-week", range: 1...7, bitOffset: 0,
        names: ["SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7], wraps: true)
    static let year = CronField(name: "year", range: CronExpression.years, bitOffset: 1970, names: [:], wraps: false)

    /// Every value of the field.
    var all: CronBits { CronBits(range: (range.lowerBound - bitOffset)...(range.upperBound - bitOffset)) }

    private func error(_ token: some StringProtocol, _ problem: String) -> CronExpression.ParseError {
        CronExpression.ParseError(field: name, token: String(token), problem: problem)
    }

    /// Parses a plain field: `*`, values, names, ranges, steps and lists of them.
    func parseSet(_ text: String) throws -> CronBits {
        var bits = CronBits()
        let upper = text.uppercased()
        guard !upper.isEmpty else { throw error(text, "empty field") }
        for item in upper.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw error(text, "empty list item") }
            for value in try values(of: item) { bits.insert(value - bitOffset) }
        }
        return bits
    }

    /// The values one list item stands for.
    private func values(of item: Substring) throws -> [Int] {
        let parts = item.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw error(item, "more than one '/'") }
        let base = parts[0]
        var step = 1
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), parsed >= 1 else { throw error(item, "the step after '/' must be a whole number >= 1") }
            if wraps, parsed > range.upperBound { throw error(item, "the step must be at most \(range.upperBound)") }
            step = parsed
        }
        let start: Int
        let end: Int
        if base == "*" {
            (start, end) = (range.lowerBound, range.upperBound)
        } else if let dash = base.firstIndex(of: "-") {
            start = try value(base[..<dash], in: item)
            end = try value(base[base.index(after: dash)...], in: item)
        } else {
            start = try value(base, in: item)
            end = parts.count == 2 ? range.upperBound : start
        }
        if end >= start {
            return Array(stride(from: start, through: end, by: step))
        }
        guard wraps else { throw error(item, "the range's end is before its start") }
        // A wrapping range: start...max, then min...end, stepping across the wrap.
        let width = range.count
        let span = end + width - start
        return stride(from: 0, through: span, by: step).map { offset in
            let value = start + offset
            return value > range.upperBound ? value - width : value
        }
    }

    /// One number or name, checked against the field's bounds.
    private func value(_ text: Substring, in item: Substring) throws -> Int {
        if let number = Int(text) {
            guard range.contains(number) else { throw error(item, "\(number) is outside \(range.lowerBound)-\(range.upperBound)") }
            return number
        }
        if let named = names[String(text)] { return named }
        if text.isEmpty { throw error(item, "a value is missing") }
        throw error(item, "not a valid value")
    }

    /// Day-of-month: a plain set, or exactly one of `L`, `L-n`, `LW`, `L-nW`, `nW`.
    func parseDayOfMonth(_ text: String) throws -> CronExpression.DayRule {
        let upper = text.uppercased()
        guard upper.contains("L") || upper.contains("W") else { return .monthDays(try parseSet(text)) }
        guard !upper.contains(",") else { throw error(text, "'L' and 'W' cannot be combined with other days") }
        if upper == "L" { return .lastDay(offset: 0) }
        if upper == "LW" { return .nearestWeekdayToLast(offset: 0) }
        if upper.hasPrefix("L-") {
            let weekday = upper.hasSuffix("W")
            guard let offset = Int(upper.dropFirst(2).dropLast(weekday ? 1 : 0)), (0...30).contains(offset) else {
                throw error(text, weekday ? "'L-nW' needs n from 0 to 30" : "'L-n' needs n from 0 to 30")
            }
            return weekday ? .nearestWeekdayToLast(offset: offset) : .lastDay(offset: offset)
        }
        if upper.hasSuffix("W"), let day = Int(upper.dropLast()) {
            guard (1...31).contains(day) else { throw error(text, "'nW' needs n from 1 to 31") }
            return .nearestWeekday(day)
        }
        throw error(text, "not a valid value")
    }

    /// Day-of-week: a plain set, `L` (= SAT), or exactly one of `nL`, `n#k`.
    func parseDayOfWeek(_ text: String) throws -> CronExpression.DayRule {
        let upper = text.uppercased()
        guard upper.contains("L") || upper.contains("#") else { return .weekdays(try parseSet(text)) }
        guard !upper.contains(",") else { throw error(text, "'L' and '#' cannot be combined with other days") }
        if upper == "L" { return .weekdays(CronBits(value: 7)) }
        if upper.hasSuffix("L") {
            return .lastWeekdayOfMonth(try value(upper.dropLast()[...], in: Substring(text)))
        }
        let parts = upper.split(separator: "#", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw error(text, "not a valid value") }
        let weekday = try value(parts[0], in: Substring(text))
        guard let nth = Int(parts[1]), (1...5).contains(nth) else { throw error(text, "'n#k' needs k from 1 to 5") }
        return .nthWeekday(weekday: weekday, nth: nth)
    }
}
