import Foundation
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reaps orphaned descendants when the agent runs as PID 1 (a container without an init).
///
/// As PID 1 the agent inherits every orphan of its tasks (a double-forked grandchild, a
/// killed `setsid` escapee); without reaping they would stay zombies for good. The task
/// leaders are reaped by swift-subprocess, so the reaper must never take one of those: it
/// reaps only a zombie that is not a registered leader *and* was already a zombie at the
/// previous sweep (a leader is reaped by its owner within milliseconds of exiting, so the
/// second condition also covers a leader not yet registered). Off unless `getpid() == 1`.
struct OrphanReaper: Service {
    /// Pids of task leaders currently owned by swift-subprocess.
    static let leaders = Mutex<Set<Int32>>([])

    let interval: Duration

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    static var isNeeded: Bool { getpid() == 1 }

    func run() async throws {
        guard Self.isNeeded else { return }
        try? await cancelWhenGracefulShutdown {
            var seen: Set<Int32> = []
            while !Task.isCancelled {
                seen = Self.sweep(previouslySeen: seen)
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One sweep: reaps zombie children seen at the previous sweep too; returns the zombie
    /// children seen now.
    static func sweep(previouslySeen: Set<Int32>) -> Set<Int32> {
        let me = getpid()
        let owned = leaders.withLock { $0 }
        var zombies: Set<Int32> = []
        for process in ProcStat.all() where process.parentPID == me && process.state == "Z" && !owned.contains(process.pid) {
            if previouslySeen.contains(process.pid) {
                var status: Int32 = 0
                _ = waitpid(process.pid, &status, WNOHANG)
            } else {
                zombies.insert(process.pid)
            }
        }
        return zombies
    }
}
