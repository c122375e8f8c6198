import Foundation

/// A wall-clock date and time (proleptic Gregorian), with the calendar arithmetic the cron
/// engine needs, done in integers — no `Calendar` in the hot path.
struct CivilTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int

    /// Days since 1970-01-01 for a civil date (Howard Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The civil date of a day count since 1970-01-01 (`civil_from_days`).
    static func date(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Day of week in Quartz numbering: 1 = Sunday ... 7 = Saturday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        // 1970-01-01 was a Thursday (5).
        let d = days(year: year, month: month, day: day)
        return ((d % 7 + 7) % 7 + 4) % 7 + 1
    }

    /// Seconds since the epoch if this wall time were UTC.
    var secondsAsUTC: Int64 {
        Int64(Self.days(year: year, month: month, day: day)) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// The wall time `seconds` after the epoch on a UTC clock.
    init(secondsAsUTC seconds: Int64) {
        let days = Int((seconds >= 0 ? seconds : seconds - 86_399) / 86_400)
        let rest = Int(seconds - Int64(days) * 86_400)
        let date = Self.date(days: days)
        self.init(year: date.year, month: date.month, day: date.day, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60)
    }

    static func < (lhs: CivilTime, rhs: CivilTime) -> Bool {
        lhs.secondsAsUTC < rhs.secondsAsUTC
    }

    var description: String {
        func pad(_ value: Int, _ width: Int = 2) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month))-\(pad(day))T\(pad(hour)):\(pad(minute)):\(pad(second))"
    }
}

/// Converts between instants and wall times of one IANA zone, with the DST rules of the
/// cron engine. Fires follow one definition: wall time `W` fires at the first instant whose
/// wall clock shows `W` or later. So a wall time that occurs twice (fall-back overlap) fires
/// at its first occurrence, and one that does not exist (spring-forward gap) fires at the
/// transition, the first instant after the gap.
struct ZoneClock: Sendable {
    let timeZone: TimeZone

    func offset(atSecond second: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(second))))
    }

    /// The wall time at an instant (seconds since the epoch).
    func civil(atSecond second: Int64) -> CivilTime {
        CivilTime(secondsAsUTC: second + offset(atSecond: second))
    }

    /// The latest wall time shown at or before `second`, as seconds on a UTC clock: the wall
    /// time at `second`, except in the repeated part of a fall-back overlap, where the clock
    /// already showed later wall times before it was set back. Every wall time up to this one
    /// has had its first instant.
    func latestWall(upTo second: Int64) -> Int64 {
        let now = offset(atSecond: second)
        let wall = second + now
        let window: Int64 = 2 * 86_400
        // Offsets only fall at a fall-back: compare with two days ago (a transition and its
        // reversal within two days does not occur in the tz database's zones since 1970).
        guard offset(atSecond: second - window) > now else { return wall }
        // Find the fall-back: the first instant of the window with today's offset.
        var low = second - window  // offset > now
        var high = second          // offset == now
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(atSecond: middle) > now { low = middle } else { high = middle }
        }
        // `low` is the last second before the clock was set back.
        return max(wall, low + offset(atSecond: low))
    }

    /// The first instant whose wall clock shows `civil` or later: the instant showing it; the
    /// earlier one in an overlap; the transition when `civil` falls in a gap.
    func firstInstant(showing civil: CivilTime) -> Int64 {
        let local = civil.secondsAsUTC
        let before = offset(atSecond: local - 86_400)
        let after = offset(atSecond: local + 86_400)
        if before == after {
            let candidate = local - before
            if offset(atSecond: candidate) == before { return candidate }
            // A transition and its reversal within two days: an exact probe.
            return local - offset(atSecond: local - offset(atSecond: local))
        }
        // An instant is valid when the offset in force there is the one it was computed with.
        let valid = [before, after].map { (instant: local - $0, offset: $0) }.filter { offset(atSecond: $0.instant) == $0.offset }
        if let first = valid.map(\.instant).min() { return first }
        // A gap (the clock jumps from `before` to `after`): the transition lies between the
        // instant `local` would be under either offset.
        var low = min(local - after, local - before)   // offset == before
        var high = max(local - after, local - before)  // offset == after
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(atSecond: middle) == before { low = middle } else { high = middle }
        }
        return high
    }
}
