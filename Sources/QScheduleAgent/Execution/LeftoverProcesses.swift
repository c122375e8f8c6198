import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Finds and stops what earlier agent processes left running, for all leftover tasks at
/// once: `/proc` is read in one pass (stat and environment of each process), however many
/// leftover tasks and earlier agent instances there are, and every group shares one grace
/// period.
///
/// A task's processes are its recorded leader — only while that pid still has the recorded
/// start time, so a recycled pid is never touched — and every process whose environment
/// carries `QSCHEDULE_TASK_ID=<task>` together with the `QSCHEDULE_AGENT_INSTANCE` of an
/// earlier agent (descendants that left the group with `setsid`).
enum LeftoverProcesses {
    /// A process found by its environment markers.
    private struct Marked {
        var pid: Int32
        var startTicks: Int64
    }

    /// Stops the leftovers of `tasks`: SIGTERM to each live recorded group, `grace`, SIGKILL
    /// to what remains of them, then SIGKILL to the marked processes still alive. Returns the
    /// ids of the tasks of which any process was found.
    static func stop(tasks: [LeftoverTask], earlierInstances: [String], grace: Duration) async -> Set<String> {
        guard !tasks.isEmpty else { return [] }
        let processes = Dictionary(ProcStat.all().map { ($0.pid, $0) }, uniquingKeysWith: { first, _ in first })
        var found: Set<String> = []
        var groups: Set<Int32> = []
        for task in tasks {
            guard let process = task.process, let ticks = process.startTicks, process.pid > 1,
                  let stat = processes[process.pid], stat.startTicks == ticks, !stat.hasExited else { continue }
            groups.insert(process.pid)
            found.insert(task.record.id)
        }
        let taskIDs = Set(tasks.map(\.record.id))
        let instances = Set(earlierInstances + tasks.compactMap(\.process?.instance))
        var marked: [Marked] = []
        let me = getpid()
        for stat in processes.values where stat.pid != me && stat.pid > 1 && !stat.hasExited {
            guard let markers = Self.markers(of: stat.pid), let instance = markers.instance, instances.contains(instance),
                  let taskID = markers.taskID, taskIDs.contains(taskID) else { continue }
            marked.append(Marked(pid: stat.pid, startTicks: stat.startTicks))
            found.insert(taskID)
        }
        await ProcessGroupKiller.terminate(groups: groups, grace: grace)
        for process in marked where ProcessIdentity.startTicks(of: process.pid) == process.startTicks {
            kill(process.pid, SIGKILL)
        }
        return found
    }

    /// `QSCHEDULE_TASK_ID` and `QSCHEDULE_AGENT_INSTANCE` from a process's environment;
    /// `nil` when it cannot be read.
    static func markers(of pid: Int32) -> (taskID: String?, instance: String?)? {
        guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        let taskPrefix = Array("QSCHEDULE_TASK_ID=".utf8)
        let instancePrefix = Array("QSCHEDULE_AGENT_INSTANCE=".utf8)
        var taskID: String?
        var instance: String?
        for entry in environment.split(separator: 0, omittingEmptySubsequences: true) {
            if entry.starts(with: taskPrefix) {
                taskID = String(decoding: entry.dropFirst(taskPrefix.count), as: UTF8.self)
            } else if entry.starts(with: instancePrefix) {
                instance = String(decoding: entry.dropFirst(instancePrefix.count), as: UTF8.self)
            }
        }
        return (taskID, instance)
    }
}
