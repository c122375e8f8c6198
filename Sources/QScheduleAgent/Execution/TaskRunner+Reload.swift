import Foundation
import Logging

/// How the runner takes a reloaded `agent.conf` (jobs added, changed, removed live).
extension TaskRunner {
    /// What a reload changed in the runner.
    public struct Reconfiguration: Sendable, Equatable {
        public var added: [String] = []
        public var changed: [String] = []
        public var removed: [String] = []
    }

    /// A reload of `agent.conf`: new jobs take work at once; a changed job's next tasks start
    /// with its new definition (running ones finish under the old); a removed job takes no
    /// new task and disappears once its queued and running tasks are over. Stored on/off
    /// state (`jobs/on|off.do`) still wins over `enabled`.
    func reconfigure(_ configured: [(JobConfig, TaskExecutor)], states: [String: JobStateRecord]) -> Reconfiguration {
        var outcome = Reconfiguration()
        for (config, executor) in configured {
            let enabled = states[config.name]?.enabled ?? config.enabled
            if var slot = jobs[config.name] {
                guard slot.config != config || slot.retiring else { continue }
                if slot.retiring { outcome.added.append(config.name) } else { outcome.changed.append(config.name) }
                (slot.definition, slot.enabled, slot.retiring) = (JobDefinition(config: config, executor: executor), enabled, false)
                jobs[config.name] = slot
            } else {
                jobs[config.name] = JobSlot(config: config, executor: executor, enabled: enabled, canSchedule: states[config.name]?.canSchedule ?? true)
                outcome.added.append(config.name)
            }
        }
        let names = Set(configured.map(\.0.name))
        for (name, slot) in jobs where !names.contains(name) && !slot.retiring {
            jobs[name]?.retiring = true
            outcome.removed.append(name)
            if slot.active + slot.finishing.count == 0 { retire(name) }
        }
        pump()  // a larger max_concurrency may start waiting tasks now
        return Reconfiguration(added: outcome.added.sorted(), changed: outcome.changed.sorted(), removed: outcome.removed.sorted())
    }

    /// A removed job's last task is over: the job is gone.
    func retire(_ name: String) {
        jobs.removeValue(forKey: name)
        logger.notice("job removed by a reload: its last task is over", metadata: ["job": "\(name)"])
    }
}
