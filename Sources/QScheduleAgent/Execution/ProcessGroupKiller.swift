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
    /// SIGTERM now, SIGKILL after `grace` if anything of the group is left; returns when the
    /// group is gone (or, at worst, shortly after the SIGKILL).
    static func terminate(pgid: Int32, grace: Duration) async {
        guard pgid > 1 else { return }
        await terminate(groups: [pgid], grace: grace)
    }

    /// SIGTERM to every group, one shared grace period, SIGKILL to the groups still alive;
    /// returns when they are gone (or shortly after the SIGKILL at worst). A group counts as
    /// alive while a non-zombie member is in `/proc`: a killed orphan stays a zombie until
    /// its new parent reaps it (a container's pid 1 may never do so).
    static func terminate(groups: Set<Int32>, grace: Duration) async {
        guard !groups.isEmpty else { return }
        for group in groups { kill(-group, SIGTERM) }
        let clock = ContinuousClock()
        func alive() -> Set<Int32> {
            // kill(-g, 0) is cheap and rules out groups with no member at all; only then is /proc read.
            let signalled = groups.filter { kill(-$0, 0) == 0 || errno == EPERM }
            guard !signalled.isEmpty else { return [] }
            return Set(ProcStat.all().lazy.filter { signalled.contains($0.processGroup) && !$0.hasExited }.map(\.processGroup))
        }
        let deadline = clock.now.advanced(by: grace)
        while !alive().isEmpty, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20), tolerance: .milliseconds(10))
        }
        for group in alive() { kill(-group, SIGKILL) }
        let reaped = clock.now.advanced(by: .seconds(2))
        while !alive().isEmpty, clock.now < reaped {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// SIGKILLs every process (other than this one) whose environment carries both
    /// `QSCHEDULE_TASK_ID=<taskID>` and this agent's `QSCHEDULE_AGENT_INSTANCE`: descendants
    /// that escaped the group with `setsid`. Returns how many were signalled.
    @discardableResult
    static func sweepEscapees(taskID: String, instance: String) -> Int {
        let me = getpid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        var killed = 0
        for entry in entries {
            guard let pid = Int32(entry), pid != me, pid > 1,
                  let markers = LeftoverProcesses.markers(of: pid),
                  markers.taskID == taskID, markers.instance == instance else { continue }
            if kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
    }
}
