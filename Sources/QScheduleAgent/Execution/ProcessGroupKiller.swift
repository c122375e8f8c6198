import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Stops everything a command task started: SIGTERM to its process group, a grace period,
/// then SIGKILL to the group; finally a sweep for descendants that left the group with
/// `setsid` (found by the `QSCHEDULE_TASK_ID` they inherited), which get SIGKILL too.
///
/// A process group id cannot be reused while any member lives, so signalling the group after
/// its leader exited still reaches only the task's processes.
enum ProcessGroupKiller {
    /// Whether a live (non-zombie) process is still in group `pgid`. A killed orphan stays a
    /// zombie until its new parent reaps it (and a container's pid 1 may never do so), so
    /// `kill(-pgid, 0)` alone would report the group alive; `/proc` tells zombies apart.
    static func groupExists(_ pgid: Int32) -> Bool {
        guard kill(-pgid, 0) == 0 || errno == EPERM else { return false }
        return ProcStat.all().contains { $0.processGroup == pgid && !$0.hasExited }
    }

    /// SIGTERM now, SIGKILL after `grace` if anything of the group is left; returns when the
    /// group is gone (or, at worst, shortly after the SIGKILL).
    static func terminate(pgid: Int32, grace: Duration) async {
        guard pgid > 1 else { return }
        kill(-pgid, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        while groupExists(pgid), clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20), tolerance: .milliseconds(10))
        }
        if groupExists(pgid) { kill(-pgid, SIGKILL) }
        let reaped = clock.now.advanced(by: .seconds(2))
        while groupExists(pgid), clock.now < reaped {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// SIGKILLs every process (other than this one) whose environment carries both
    /// `QSCHEDULE_TASK_ID=<taskID>` and this agent's `QSCHEDULE_AGENT_INSTANCE`: descendants
    /// that escaped the group with `setsid`. Returns how many were signalled.
    @discardableResult
    static func sweepEscapees(taskID: String, instance: String) -> Int {
        let markers = [Array("QSCHEDULE_TASK_ID=\(taskID)".utf8), Array("QSCHEDULE_AGENT_INSTANCE=\(instance)".utf8)]
        let me = getpid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        var killed = 0
        for entry in entries {
            guard let pid = Int32(entry), pid != me, pid > 1 else { continue }
            guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let entries = Set(environment.split(separator: 0, omittingEmptySubsequences: true).map { Array($0) })
            if markers.allSatisfy(entries.contains), kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
    }
}
