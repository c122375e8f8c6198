import Foundation

/// A Quartz cron expression (DESIGN §6): `sec min hour day-of-month month day-of-week [year]`.
///
/// Supports `* ? - , /`, `L` and `L-n` (last day of the month, n days before it), `nW`
/// (nearest weekday to day n, never crossing the month), `LW` (last weekday), `L-nW` (the
/// weekday nearest to n days before the last day), `nL` (last
/// weekday n of the month), `n#k` (k-th weekday n), names `JAN-DEC` and `SUN-SAT` in any
/// case, day-of-week 1-7 = SUN-SAT, ranges that wrap (`FRI-MON`, `22-2`), steps on `*`, a
/// value or a range (`*/15`, `5/15`, `10-40/10`), and an optional year field (1970-2099).
/// Exactly one of day-of-month and day-of-week must be `?`, as Quartz requires.
///
/// Next times are computed on the wall clock of a time zone; see ``next(after:in:)``.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// Quartz's year range.
    public static let years = 1970...2099

    /// The expression as written.
    public let description: String
    let seconds: CronBits
    let minutes: CronBits
    let hours: CronBits
    let months: CronBits
    /// Years as offsets from 1970.
    let yearBits: CronBits
    let days: DayRule

    /// How days are chosen: by day-of-month or by day-of-week (the other field is `?`).
    enum DayRule: Hashable, Sendable {
        /// Days 1-31 as bits.
        case monthDays(CronBits)
        /// `L` (offset 0) or `L-n`.
        case lastDay(offset: Int)
        /// `LW` (offset 0) or `L-nW`: the weekday nearest to the last day minus `offset`,
        /// never crossing into another month.
        case nearestWeekdayToLast(offset: Int)
        /// `nW`.
        case nearestWeekday(Int)
        /// Weekdays 1-7 (1 = Sunday) as bits.
        case weekdays(CronBits)
        /// `nL`: the last weekday `n` of the month.
        case lastWeekdayOfMonth(Int)
        /// `n#k`: the k-th weekday `n` of the month.
        case nthWeekday(weekday: Int, nth: Int)
    }

    /// A parse error naming the field and the offending token.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        /// `seconds`, `minutes`, `hours`, `day-of-month`, `month`, `day-of-week`, `year`, or
        /// `expression` for problems of the whole expression.
        public let field: String
        /// The offending token.
        public let token: String
        public let problem: String

        public var description: String { "\(field): \(problem): \"\(token)\"" }
    }

    /// Parses `text`; throws ``ParseError`` naming the field and the offending token.
    public init(_ text: String) throws {
        description = text
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 6 || fields.count == 7 else {
            throw ParseError(
                field: "expression", token: text,
                problem: "needs 6 or 7 fields (sec min hour day-of-month month day-of-week [year]), got \(fields.count)")
        }
        seconds = try CronField.seconds.parseSet(fields[0])
        minutes = try CronField.minutes.parseSet(fields[1])
        hours = try CronField.hours.parseSet(fields[2])
        let writtenMonths = try CronField.month.parseSet(fields[4])
        yearBits = fields.count == 7 ? try CronField.year.parseSet(fields[6]) : CronField.year.all
        switch (fields[3] == "?", fields[5] == "?") {
        case (true, true):
            throw ParseError(field: "day-of-week", token: "?", problem: "'?' may stand in day-of-month or in day-of-week, not in both")
        case (false, false):
            throw ParseError(field: "day-of-week", token: fields[5], problem: "one of day-of-month and day-of-week must be '?' (Quartz does not support both)")
        case (false, true):
            days = try CronField.dayOfMonth.parseDayOfMonth(fields[3])
        case (true, false):
            days = try CronField.dayOfWeek.parseDayOfWeek(fields[5])
        }
        // Drop months in which the day rule can never hold (Feb 30, 31st of April, ...), so an
        // expression that never fires is known at once instead of by a search to 2099.
        var possible = CronBits()
        for month in 1...12 where writtenMonths.contains(month) {
            let longest = month == 2 ? 29 : CivilTime.daysInMonth(year: 2001, month: month)
            let canHold: Bool
            switch days {
            case .monthDays(let bits): canHold = bits.next(from: 1).map { $0 <= longest } ?? false
            case .lastDay(let offset): canHold = longest - offset >= 1
            case .nearestWeekday(let day): canHold = day <= longest
            case .nearestWeekdayToLast(let offset): canHold = longest - offset >= 1
            case .weekdays, .lastWeekdayOfMonth, .nthWeekday: canHold = true
            }
            if canHold { possible.insert(month) }
        }
        months = possible
    }

    // MARK: Evaluation

    /// The first fire time strictly after `instant` (whole seconds), in `timeZone`, or `nil`
    /// when the expression never fires again (its years are past, or its days never occur).
    ///
    /// DST, one rule: a matching wall time fires at the first instant at which the wall clock
    /// shows that time or later. A wall time that occurs twice (fall-back overlap) fires once,
    /// at its first occurrence; the repeated hour fires nothing again. A wall time that does not
    /// exist (spring-forward gap) fires at the transition, the first instant after the gap
    /// (`0 30 2 * * ?` fires at 03:00 EDT on the New York spring-forward day); several matching
    /// times in one gap fire once, together. Fires are strictly increasing and no matching
    /// wall time that exists is ever skipped.
    public func next(after instant: Date, in timeZone: TimeZone) -> Date? {
        let clock = ZoneClock(timeZone: timeZone)
        let afterSecond = Int64((instant.timeIntervalSince1970).rounded(.down))
        // Every wall time up to the latest one shown by `instant` has fired or been passed.
        let start = CivilTime(secondsAsUTC: clock.latestWall(upTo: afterSecond) + 1)
        guard let civil = nextCivil(from: start) else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(clock.firstInstant(showing: civil)))
    }

    /// The next `count` fire times after `instant`; fewer when it stops firing.
    public func nextTimes(after instant: Date, in timeZone: TimeZone, count: Int) -> [Date] {
        var result: [Date] = []
        var cursor = instant
        while result.count < count, let next = next(after: cursor, in: timeZone) {
            result.append(next)
            cursor = next
        }
        return result
    }

    /// Whether the wall time matches every field.
    func matches(_ time: CivilTime) -> Bool {
        CronExpression.years.contains(time.year)
            && yearBits.contains(time.year - 1970)
            && months.contains(time.month)
            && dayMask(year: time.year, month: time.month).contains(time.day)
            && hours.contains(time.hour)
            && minutes.contains(time.minute)
            && seconds.contains(time.second)
    }

    /// The first matching wall time at or after `start`, or `nil` past 2099.
    func nextCivil(from start: CivilTime) -> CivilTime? {
        guard !months.isEmpty else { return nil }
        var t = start
        var daysOfMonth: (year: Int, month: Int, mask: CronBits)?
        while true {
            // Normalise carries.
            if t.second > 59 { t.second = 0; t.minute += 1 }
            if t.minute > 59 { t.minute = 0; t.hour += 1 }
            if t.hour > 23 { t.hour = 0; t.day += 1 }
            if t.day > CivilTime.daysInMonth(year: t.year, month: t.month) { t.day = 1; t.month += 1 }
            if t.month > 12 { t.month = 1; t.year += 1 }
            guard t.year <= CronExpression.years.upperBound else { return nil }
            if t.year < CronExpression.years.lowerBound { t = CivilTime(year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0) }

            guard let year = yearBits.next(from: t.year - 1970).map({ $0 + 1970 }) else { return nil }
            if year != t.year { t = CivilTime(year: year, month: 1, day: 1, hour: 0, minute: 0, second: 0) }
            guard let month = months.next(from: t.month) else {
                t = CivilTime(year: t.year + 1, month: 1, day: 1, hour: 0, minute: 0, second: 0)
                continue
            }
            if month != t.month { t = CivilTime(year: t.year, month: month, day: 1, hour: 0, minute: 0, second: 0) }
            if daysOfMonth == nil || daysOfMonth!.year != t.year || daysOfMonth!.month != t.month {
                daysOfMonth = (t.year, t.month, dayMask(year: t.year, month: t.month))
            }
            guard let day = daysOfMonth!.mask.next(from: t.day) else {
                t = CivilTime(year: t.year, month: t.month + 1, day: 1, hour: 0, minute: 0, second: 0)
                continue
            }
            if day != t.day { t.day = day; t.hour = 0; t.minute = 0; t.second = 0 }
            guard let hour = hours.next(from: t.hour) else {
                t.day += 1; t.hour = 0; t.minute = 0; t.second = 0
                continue
            }
            if hour != t.hour { t.hour = hour; t.minute = 0; t.second = 0 }
            guard let minute = minutes.next(from: t.minute) else {
                t.hour += 1; t.minute = 0; t.second = 0
                continue
            }
            if minute != t.minute { t.minute = minute; t.second = 0 }
            guard let second = seconds.next(from: t.second) else {
                t.minute += 1; t.second = 0
                continue
            }
            t.second = second
            return t
        }
    }

    /// The days of `month` in `year` on which the expression fires.
    func dayMask(year: Int, month: Int) -> CronBits {
        let length = CivilTime.daysInMonth(year: year, month: month)
        switch days {
        case .monthDays(let bits):
            return bits.intersection(CronBits(range: 1...length))
        case .lastDay(let offset):
            return length - offset >= 1 ? CronBits(value: length - offset) : CronBits()
        case .nearestWeekdayToLast(let offset):
            return Self.nearestWeekday(to: length - offset, year: year, month: month, length: length)
        case .nearestWeekday(let day):
            return Self.nearestWeekday(to: day, year: year, month: month, length: length)
        case .weekdays(let bits):
            var mask = CronBits()
            let first = CivilTime.weekday(year: year, month: month, day: 1)
            for day in 1...length where bits.contains((first - 1 + day - 1) % 7 + 1) { mask.insert(day) }
            return mask
        case .lastWeekdayOfMonth(let weekday):
            let last = CivilTime.weekday(year: year, month: month, day: length)
            return CronBits(value: length - (last - weekday + 7) % 7)
        case .nthWeekday(let weekday, let nth):
            let first = CivilTime.weekday(year: year, month: month, day: 1)
            let day = 1 + (weekday - first + 7) % 7 + 7 * (nth - 1)
            return day <= length ? CronBits(value: day) : CronBits()
        }
    }
}

extension CronExpression {
    /// `nW`: the weekday nearest to `day`, never crossing into another month (a Saturday 1st
    /// moves to Monday the 3rd; a Sunday on the last day to Friday); none when `day` is not in
    /// the month.
    static func nearestWeekday(to day: Int, year: Int, month: Int, length: Int) -> CronBits {
        guard (1...length).contains(day) else { return CronBits() }
        switch CivilTime.weekday(year: year, month: month, day: day) {
        case 7: return CronBits(value: day == 1 ? 3 : day - 1)
        case 1: return CronBits(value: day == length ? day - 2 : day + 1)
        default: return CronBits(value: day)
        }
    }
}

/// A set of small integers (0...191) as three machine words, with "next member at or
/// after" in a few instructions.
struct CronBits: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt64) = (0, 0, 0)

    init() {}

    init(value: Int) {
        insert(value)
    }

    init(range: ClosedRange<Int>) {
        for value in range { insert(value) }
    }

    static func == (lhs: CronBits, rhs: CronBits) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
    }

    var isEmpty: Bool { words.0 == 0 && words.1 == 0 && words.2 == 0 }

    mutating func insert(_ value: Int) {
        precondition((0..<192).contains(value))
        let bit = UInt64(1) << UInt64(value % 64)
        switch value / 64 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        default: words.2 |= bit
        }
    }

    func contains(_ value: Int) -> Bool {
        guard (0..<192).contains(value) else { return false }
        let bit = UInt64(1) << UInt64(value % 64)
        switch value / 64 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        default: return words.2 & bit != 0
        }
    }

    func intersection(_ other: CronBits) -> CronBits {
        var result = CronBits()
        result.words = (words.0 & other.words.0, words.1 & other.words.1, words.2 & other.words.2)
        return result
    }

    /// The smallest member `>= value`, or `nil`.
    func next(from value: Int) -> Int? {
        guard value < 192 else { return nil }
        let start = max(0, value)
        var index = start / 64
        var word = self.word(index) & (UInt64.max << UInt64(start % 64))
        while true {
            if word != 0 { return index * 64 + word.trailingZeroBitCount }
            index += 1
            guard index < 3 else { return nil }
            word = self.word(index)
        }
    }

    private func word(_ index: Int) -> UInt64 {
        switch index {
        case 0: return words.0
        case 1: return words.1
        default: return words.2
        }
    }
}
