import Foundation

/// The fields of `/proc/<pid>/stat` the agent uses, parsed once (after the `(comm)` field,
/// which may itself contain spaces and parentheses).
struct ProcStat: Sendable, Equatable {
    var pid: Int32
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    var state: Character
    var parentPID: Int32
    var processGroup: Int32
    /// Start time in clock ticks after boot (field 22).
    var startTicks: Int64

    /// A zombie or dead entry: the process has exited.
    var hasExited: Bool { state == "Z" || state == "X" }

    /// The entry of `pid`, or `nil` when there is no such process.
    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = Int32(fields[1]),
              let group = Int32(fields[2]), let ticks = Int64(fields[19]) else { return nil }
        self.pid = pid
        self.state = state
        self.parentPID = parent
        self.processGroup = group
        self.startTicks = ticks
    }

    /// Every process visible in `/proc` now.
    static func all() -> [ProcStat] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0).flatMap(ProcStat.init(pid:)) }
    }
}
