import Foundation
import Logging

/// The runner's shutdown and start-up recovery (DESIGN §4, §5): what happens to tasks when the
/// agent stops, and to the tasks a previous process left.
extension TaskRunner {
    // MARK: Shutdown and recovery

    /// Shutdown after the grace ran out: stops every running task (recorded per its job's
    /// `recover`: `retry` stays unfinished and runs again at the next start, `discard` is
    /// recorded 503) and settles queued ones the same way. Returns once no task runs, or
    /// after `kill_grace` + 6 s at worst.
    public func stopAllForShutdown() async {
        beginShutdown()
        for (name, slot) in jobs {
            for running in slot.running.values { running.stop.yield(.shutdown) }
            guard !slot.queue.isEmpty else { continue }
            let queued = slot.queue
            jobs[name]?.queue = []
            waitingTotal -= queued.count
            guard slot.config.recover == .discard else { continue }  // retry: stays queued in the journal
            let now = Date().epochMilliseconds
            await settle(queued.map { record in
                TaskCompletion(
                    taskID: record.id, job: name, result: .lost, startTime: now, endTime: now,
                    message: "lost: the agent stopped before it started")
            })
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(settings.killGrace + 6))
        while jobs.values.contains(where: { !$0.running.isEmpty || !$0.finishing.isEmpty }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// At start: tasks a previous agent process left queued or running. Their leftover
    /// processes are killed first — the recorded leader only if its pid still has the same
    /// start time, plus every process carrying the task's environment markers — so a task
    /// id never runs twice at once. Then per job `recover`: `retry` queues the task again
    /// (attempt + 1 if its start was journaled, up to `max_attempts`; the same attempt if it
    /// never started), `discard` records it 503.
    ///
    /// The new attempt number is journaled with the task's start, before anything runs: a
    /// crash before that start leaves the journal as it was, and the next recovery computes
    /// the same attempt again — an attempt number never runs twice.
    ///
    /// Runs once; ``Agent/run(onReady:)`` calls it before the HTTP interface listens, so no
    /// `/api/check` can answer "idle" while leftovers are being settled.
    public func recoverLeftovers() async {
        if let recovery {
            await recovery.value
            return
        }
        // A stored task, so that every caller (and every dispatch) waits for the one recovery.
        let recovery = Task { await self.settleLeftovers() }
        self.recovery = recovery
        await recovery.value
    }

    /// Before ``recoverLeftovers()``: these leftovers (id → why) are not run again here; they
    /// are recorded lost with that message once their processes are stopped.
    func settleElsewhere(_ reasons: [String: String]) {
        settledElsewhere.merge(reasons) { $1 }
    }

    func settleLeftovers() async {
        let leftovers: [LeftoverTask]
        let earlierInstances: [String]
        do {
            leftovers = try store.leftoverTasks()
            earlierInstances = try store.earlierInstances()
        } catch {
            logger.error("cannot read the journal; leftover tasks are not recovered", metadata: ["error": "\(error)"])
            return
        }
        do {
            try store.registerInstance(instance)
        } catch {
            logger.error("cannot record this agent instance; a crash of this process leaves escaped descendants unswept", metadata: ["error": "\(error)"])
        }
        // One pass over /proc and one grace period for all leftovers together.
        let found = await LeftoverProcesses.stop(tasks: leftovers, earlierInstances: earlierInstances, grace: .seconds(settings.killGrace))
        var lost: [TaskCompletion] = []
        var requeued = 0
        let now = Date().epochMilliseconds
        for leftover in leftovers {
            let task = leftover.record
            // A process found for a task journaled as queued would mean it ran unjournaled:
            // counted as started, so its rerun is a new attempt.
            let started = task.status == .running || found.contains(task.id)
            func lose(_ message: String) {
                lost.append(TaskCompletion(
                    taskID: task.id, job: task.job, result: .lost, startTime: task.startTime ?? now, endTime: now, message: message,
                    attempt: task.attempt))
            }
            guard let slot = jobs[task.job] else {
                lose("lost: job \(task.job) is no longer registered on this host")
                continue
            }
            if let reason = settledElsewhere[task.id] {
                lose(reason)
                continue
            }
            switch slot.config.recover {
            case .discard:
                lose(started ? "lost: the agent stopped while it ran" : "lost: the agent stopped before it started")
            case .retry:
                let attempt = started ? task.attempt + 1 : task.attempt
                guard attempt <= slot.config.maxAttempts else {
                    lose("lost: not run again, max_attempts (\(slot.config.maxAttempts)) reached")
                    continue
                }
                var again = task
                again.attempt = attempt
                again.status = .queued
                jobs[task.job]?.queue.append(again)
                waitingTotal += 1
                events.recovered(again)
                requeued += 1
            }
        }
        if !leftovers.isEmpty {
            logger.notice("leftover tasks recovered", metadata: [
                "queued_again": "\(requeued)", "lost": "\(lost.count)", "with_processes_killed": "\(found.count)",
            ])
        }
        await settle(lost)
        pump()
    }
}
