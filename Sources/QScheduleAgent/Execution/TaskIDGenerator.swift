import Foundation
import Synchronization

/// Generates task ids in the seed's shape `yyMMdd.HHmmss.<ip>.<pid>.<seq>`,
/// e.g. `140727.123745.192.168.236.130.26859.2531970`.
///
/// The time is the agent's time zone; `seq` counts up within the process. Uniqueness across
/// processes that share a pid (containers, pid 1) is enforced by the journal's primary key:
/// a collision makes the dispatcher draw the next id.
public final class TaskIDGenerator: Sendable {
    private let ip: String
    private let pid: Int32
    private let sequence = Atomic<Int>(0)
    /// The `yyMMdd.HHmmss` stamp of the last second asked for, reused within that second.
    private let stamps: PerSecondCache<String>

    public init(ip: String, pid: Int32 = ProcessInfo.processInfo.processIdentifier, timeZone: TimeZone) {
        self.ip = ip
        self.pid = pid
        stamps = PerSecondCache { second in
            let c = ZoneClock(timeZone: timeZone).civil(atSecond: Int64(second))
            func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
            return two(c.year % 100) + two(c.month) + two(c.day) + "." + two(c.hour) + two(c.minute) + two(c.second)
        }
    }

    /// The next id for a task accepted at `date`.
    public func next(at date: Date = Date()) -> String {
        let seq = sequence.add(1, ordering: .relaxed).newValue
        return "\(stamp(at: date)).\(ip).\(pid).\(seq)"
    }

    private func stamp(at date: Date) -> String {
        stamps.value(at: Int(date.timeIntervalSince1970.rounded(.down)))
    }
}
