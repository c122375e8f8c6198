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
    private let timeZone: TimeZone
    private let sequence = Atomic<Int>(0)

    public init(ip: String, pid: Int32 = ProcessInfo.processInfo.processIdentifier, timeZone: TimeZone) {
        self.ip = ip
        self.pid = pid
        self.timeZone = timeZone
    }

    /// The next id for a task accepted at `date`.
    public func next(at date: Date = Date()) -> String {
        let seq = sequence.add(1, ordering: .relaxed).newValue
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String {
            let v = value ?? 0
            return v < 10 ? "0\(v)" : String(v)
        }
        let stamp = two((c.year ?? 0) % 100) + two(c.month) + two(c.day) + "." + two(c.hour) + two(c.minute) + two(c.second)
        return "\(stamp).\(ip).\(pid).\(seq)"
    }
}
