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

    /// The entry of `pid`, or `nil` when there is no such process. Read with one `open` and
    /// `read` into a stack buffer: it runs after every command's spawn, and Foundation's
    /// file reading cost more than the kernel's formatting of the entry.
    init?(pid: Int32) {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let parsed = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2048) { buffer -> ProcStat? in
            var count = 0
            while count < buffer.count {
                let got = read(fd, buffer.baseAddress! + count, buffer.count - count)
                if got < 0, errno == EINTR { continue }
                guard got >= 0 else { return nil }
                if got == 0 { break }
                count += got
            }
            return ProcStat(pid: pid, entry: UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Parses one `/proc/<pid>/stat` entry. After "pid (comm) " come: state ppid pgrp session
    /// tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice
    /// threads itrealvalue starttime ...; `comm` may hold spaces and parentheses, so the
    /// fields start after the last `)`.
    init?(pid: Int32, entry: UnsafeBufferPointer<UInt8>) {
        guard let close = entry.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var state: UInt8?
        var parent: Int64?, group: Int64?, ticks: Int64?
        var field = -1, start = close + 1
        for index in (close + 1)...entry.count {
            guard index == entry.count || entry[index] == UInt8(ascii: " ") || entry[index] == UInt8(ascii: "\n") else { continue }
            if index > start {
                field += 1
                if field == 0 {
                    state = entry[start]
                } else if field == 1 || field == 2 || field == 19 {
                    guard let number = Self.decimal(entry[start..<index]) else { return nil }
                    if field == 1 { parent = number } else if field == 2 { group = number } else { ticks = number }
                }
                if field == 19 { break }
            }
            start = index + 1
        }
        guard let state, let parent, let group, let ticks,
              let parentPID = Int32(exactly: parent), let processGroup = Int32(exactly: group) else { return nil }
        self.pid = pid
        self.state = Character(Unicode.Scalar(state))
        self.parentPID = parentPID
        self.processGroup = processGroup
        self.startTicks = ticks
    }

    /// A non-negative decimal of at most 18 digits, or `nil`.
    private static func decimal(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> Int64? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value: Int64 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(digit - UInt8(ascii: "0"))
        }
        return value
    }

    /// Every process visible in `/proc` now.
    static func all() -> [ProcStat] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0).flatMap(ProcStat.init(pid:)) }
    }
}
