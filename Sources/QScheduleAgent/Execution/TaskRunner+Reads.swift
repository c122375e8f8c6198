import Foundation

/// What the runner holds, read by the HTTP interface, status and metrics; and the counts it
/// publishes for readers off the runner (``RunnerActivity``).
extension TaskRunner {
    // MARK: Reads

    /// Jobs with at least one running or queued task (admissions awaiting the journal count
    /// as queued: a deploy must not read "idle" while a dispatch is being acknowledged).
    public func activeJobs() -> [ActiveJob] {
        assertActivityCounted()
        let now = Date().epochMilliseconds
        return jobs.values.compactMap { slot -> ActiveJob? in
            guard slot.active + slot.finishing.count > 0 else { return nil }
            let oldestQueued = (slot.queue + slot.delayed.values).map(\.acceptedAt).min() ?? (slot.reserved > 0 ? now : nil)
            return ActiveJob(
                name: slot.config.name,
                oldestStart: (slot.running.values.map(\.startTime) + slot.finishing.values).min(),
                oldestQueued: oldestQueued,
                running: slot.running.count + slot.finishing.count,
                queued: slot.queue.count + slot.reserved + slot.delayed.count)
        }.sorted { $0.name < $1.name }
    }

    /// Live state of an active task: `running` with its progress, or `queued`; `nil` when
    /// the task is not active here (finished, unknown).
    func activeTask(_ id: String) -> (status: TaskStatus, progress: TaskProgress.Snapshot?)? {
        for slot in jobs.values {
            if let running = slot.running[id] { return (.running, running.progress.snapshot) }
            if slot.queue.contains(where: { $0.id == id }) || slot.delayed[id] != nil { return (.queued, nil) }
        }
        return nil
    }

    /// Tasks running (or whose completion is still being journaled) and waiting on this host.
    public var counts: (running: Int, waiting: Int) {
        assertActivityCounted()
        return (runningTotal + finishingTotal, waitingTotal)
    }

    // MARK: Activity

    /// A task's completion is being journaled: it still counts as running.
    func markFinishing(job: String, taskID: String, since startTime: Int64) {
        guard jobs[job] != nil, jobs[job]?.finishing.updateValue(startTime, forKey: taskID) == nil else { return }
        finishingTotal += 1
    }

    /// A task's completion is journaled (or left for recovery).
    func clearFinishing(job: String, taskID: String) {
        if jobs[job]?.finishing.removeValue(forKey: taskID) != nil { finishingTotal -= 1 }
    }

    func publishActivity() {
        activity.publish(runningTotal + waitingTotal + finishingTotal)
    }

    /// Debug builds: the totals ``activity`` publishes agree with the slots they summarize.
    func assertActivityCounted() {
        assert(finishingTotal == jobs.values.reduce(0) { $0 + $1.finishing.count }, "finishingTotal disagrees with the slots")
        assert(
            runningTotal + waitingTotal == jobs.values.reduce(0) { $0 + $1.active },
            "runningTotal + waitingTotal (\(runningTotal) + \(waitingTotal)) disagrees with the slots")
    }
}
