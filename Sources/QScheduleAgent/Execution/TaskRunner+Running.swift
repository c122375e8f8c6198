import Foundation
import Logging

/// How the runner starts queued tasks (oldest first, within the host's and the jobs' slots),
/// runs them, and records their ends (DESIGN §3, §4).
extension TaskRunner {
    // MARK: Starting and finishing

    /// Starts queued tasks, oldest first, while the host and their jobs have free slots.
    func pump() {
        while runningTotal < settings.maxRunning {
            var next: (name: String, acceptedAt: Int64)?
            for (name, slot) in jobs where !slot.queue.isEmpty && slot.running.count < slot.slots {
                let head = slot.queue[0].acceptedAt
                if next == nil || head < next!.acceptedAt { next = (name, head) }
            }
            // Mutated in place (never copied out and back): the queue may hold thousands.
            guard let name = next?.name, let record = jobs[name]?.queue.popFirst() else { return }
            let (stops, stop) = AsyncStream.makeStream(of: StopReason.self, bufferingPolicy: .bufferingNewest(1))
            let startTime = Date().epochMilliseconds
            let progress = TaskProgress()
            jobs[name]?.running[record.id] = RunningTask(record: record, startTime: startTime, progress: progress, stop: stop)
            waitingTotal -= 1
            runningTotal += 1
            // Submitted now, in the turn that freed the slot: it shares a transaction with the
            // completion of the task that ended (see ``released(_:completion:)``).
            let ticket = store.submitMarkRunning(record.id, attempt: record.attempt, startTime: startTime)
            startContinuation.yield(StartOrder(
                record: record, startTime: startTime, progress: progress, stops: stops, stop: stop, startJournaled: ticket))
        }
    }

    /// The task's handler ended: its completion is submitted to the journal, and its slot goes
    /// to the next task, whose start is submitted in the same turn — one transaction for both.
    func released(_ record: TaskRecord, completion: TaskCompletion) -> CommitTicket {
        let ticket = store.submitFinish([completion])
        guard let running = jobs[record.job]?.running.removeValue(forKey: record.id) else { return ticket }
        markFinishing(job: record.job, taskID: record.id, since: running.startTime)
        runningTotal -= 1
        pump()
        return ticket
    }

    /// The task is over (completion journaled, or left for recovery by a shutdown).
    func finished(_ record: TaskRecord) {
        forget(job: record.job, taskID: record.id)
    }

    func forget(job: String, taskID: String) {
        admittedElsewhere.remove(taskID)
        clearFinishing(job: job, taskID: taskID)
        if jobs[job]?.running.removeValue(forKey: taskID) != nil {
            runningTotal -= 1
        }
        if let slot = jobs[job], slot.retiring, slot.active + slot.finishing.count == 0 { retire(job) }
        pump()
    }

    /// Records tasks that end without running (killed or covered while queued, lost at
    /// recovery or shutdown). They stay accounted (`/api/check`, status) until the record
    /// commits; while the journal fails (disk full) the write is retried with backoff in the
    /// background, so the caller is not held.
    func settle(_ ended: [TaskCompletion]) async {
        guard !ended.isEmpty else { return }
        let completions = ended.map { completion in
            var completion = completion
            completion.alertAfterFailures = jobs[completion.job]?.config.consecutiveFailTimesAlertThreshold ?? 0
            return completion
        }
        for completion in completions { events.ended(completion, attempt: completion.attempt, ran: false) }
        for completion in completions { markFinishing(job: completion.job, taskID: completion.taskID, since: completion.startTime) }
        do {
            try await store.finishTasks(completions)
        } catch {
            logger.error("journal write failed; retrying in the background", metadata: [
                "tasks": "\(completions.count)", "first": "\(completions[0].taskID)", "error": "\(error)",
            ])
            let store = self.store
            Task {
                _ = await self.persist("completion", task: completions[0].taskID) { try await store.finishTasks(completions) }
                self.forget(completions)
            }
            return
        }
        forget(completions)
    }

    func forget(_ completions: [TaskCompletion]) {
        for completion in completions { forget(job: completion.job, taskID: completion.taskID) }
    }

    /// Runs a journal write until it commits: a failure (disk full, I/O error) is retried with
    /// capped exponential backoff (50 ms to 5 s) while the task stays accounted in memory.
    /// Returns `false` only when this task was cancelled (shutdown) or the store was closed:
    /// the journal then still holds the task's previous state, which the next start settles.
    private nonisolated func persist(_ what: String, task id: String, _ write: @Sendable () async throws -> Void) async -> Bool {
        var delay = Duration.milliseconds(50)
        var failures = 0
        while true {
            do {
                try await write()
                if failures > 0 {
                    logger.notice("journal write succeeded after failures", metadata: ["task": "\(id)", "write": "\(what)", "failures": "\(failures)"])
                }
                return true
            } catch {
                failures += 1
                if store.isClosed { return false }
                if failures == 1 || failures.isMultiple(of: 60) {
                    logger.error("journal write failed; retrying", metadata: [
                        "task": "\(id)", "write": "\(what)", "failures": "\(failures)", "error": "\(error)",
                    ])
                }
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return false
                }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    nonisolated func execute(_ order: StartOrder) async {
        let record = order.record
        guard let config = await jobConfig(record.job), let executor = await jobs[record.job]?.executor else { return }
        let logPath = logDirectory + "/" + record.id + ".log"
        // The start is durable before anything of the task runs: from here on a crash settles
        // it as started (attempt + 1 or 503), never reruns it under this attempt number.
        let store = self.store
        let started: Bool
        do {
            try await order.startJournaled.wait()
            started = true
        } catch {
            started = await persist("start", task: record.id) {
                try await store.markRunning(record.id, attempt: record.attempt, startTime: order.startTime)
            }
        }
        guard started else {
            // Shut down while the journal failed: nothing ran; the journal keeps the task's
            // previous state for the next start.
            await finished(record)
            return
        }
        events.started(record)
        var outcome: ExecutionOutcome
        var backoff: Duration?
        do {
            // A retry appends to the log of the attempts before it.
            let log = TaskLog(path: logPath, maxBytes: settings.maxLogBytes, append: await takeRetried(record.id))
            if record.attempt > 1, log.appends { log.write("[qagent] attempt \(record.attempt) starts") }
            let deadline = config.timeout > 0 ? Date(timeIntervalSince1970: Double(order.startTime) / 1000 + Double(config.timeout)) : nil
            let context = TaskContext(
                taskID: record.id, job: record.job, paramText: record.param,
                attempt: record.attempt, deadline: deadline, log: log, progress: order.progress, blockingPool: blockingPool)
            let run = StoppableRun(store: store, runDirectory: runDirectory, instance: instance, killGrace: settings.killGrace)
            outcome = await run.run(
                executor, context: context, timeout: config.timeout, startTime: order.startTime, stops: order.stops, stop: order.stop)
            // Left unfinished in the journal (settled at the next start) or recorded now.
            let shutdown = (outcome.stoppedBy == .shutdown && config.recover == .retry) || (Task.isCancelled && outcome.stoppedBy == nil)
            backoff = shutdown ? nil : await retryBackoff(record, outcome: outcome, config: config)
            var closing = Self.closingLine(outcome, durationMs: Date().epochMilliseconds - order.startTime, shutdown: shutdown)
            if let backoff { closing += "; retried as attempt \(record.attempt + 1) in \(backoff.nanoseconds / 1_000_000) ms" }
            // A silent success needs no file: its closing line is told from the journal.
            log.close(closingLine: closing, createIfEmpty: outcome.result != .succeeded || backoff != nil || shutdown)
        }
        if outcome.stoppedBy == .shutdown, config.recover == .retry {
            // Shutdown stopped it: the journal keeps it unfinished; the next start runs it again.
            logger.notice("task stopped by shutdown; it runs again at the next start", metadata: ["task": "\(record.id)", "job": "\(record.job)"])
            await finished(record)
            return
        }
        if Task.isCancelled, outcome.stoppedBy == nil {
            // Stopped by shutdown, not by a decision about this task: the journal keeps it
            // unfinished so the next start settles it by the job's recover policy.
            logger.warning("task stopped by shutdown", metadata: ["task": "\(record.id)", "job": "\(record.job)"])
            await finished(record)
            return
        }
        if let backoff {
            // Failed with retries left: queued again as attempt + 1 once the backoff is over.
            let message = "retry \(record.attempt) of \(config.retries) after: \(outcome.message)"
            do {
                try await retryLater(record, message: message, backoff: backoff).wait()
            } catch {
                _ = await persist("retry", task: record.id) {
                    try await store.submitRequeueForRetry(record.id, attempt: record.attempt + 1, message: message).wait()
                }
            }
            return
        }
        let end = Date().epochMilliseconds
        let completion = TaskCompletion(
            taskID: record.id, job: record.job, result: outcome.result, startTime: order.startTime, endTime: end,
            exitCode: outcome.exitCode, signal: outcome.signal, message: outcome.message, attempt: record.attempt,
            alertAfterFailures: config.consecutiveFailTimesAlertThreshold)
        events.ended(completion, attempt: record.attempt, ran: true)
        // Until this commits the task stays "finishing": /api/check and status still count it.
        do {
            try await released(record, completion: completion).wait()
        } catch {
            _ = await persist("completion", task: record.id) { try await store.finishTask(completion) }
        }
        await finished(record)
    }

    /// The wait before running `record` again, when its job's `retries` allow one: a failure
    /// (500) or a timeout (504) that this host admitted itself (the cluster owns the attempts
    /// of its tasks), while the agent is not shutting down; `nil` otherwise (a kill never).
    func retryBackoff(_ record: TaskRecord, outcome: ExecutionOutcome, config: JobConfig) -> Duration? {
        guard outcome.result == .failed || outcome.result == .timedOut, record.attempt <= config.retries,
              !admittedElsewhere.contains(record.id), !shuttingDown else { return nil }
        switch outcome.stoppedBy {
        case nil, .timeout?: return config.backoff(beforeRetry: record.attempt)
        default: return nil
        }
    }

    /// Whether the task's next run is a retry (its log is appended to); forgets it.
    func takeRetried(_ id: String) -> Bool {
        retried.remove(id) != nil
    }

    /// Journals `record` as queued again under attempt + 1, frees its slot, and queues it
    /// once `backoff` is over; it stays active (queued) for `/api/check` meanwhile.
    func retryLater(_ record: TaskRecord, message: String, backoff: Duration) -> CommitTicket {
        var again = record
        again.attempt += 1
        again.status = .queued
        again.message = message
        (again.startTime, again.endTime, again.duration, again.pid, again.exitCode, again.signal) = (nil, nil, nil, nil, nil, nil)
        let ticket = store.submitRequeueForRetry(record.id, attempt: again.attempt, message: message)
        if jobs[record.job]?.running.removeValue(forKey: record.id) != nil {
            runningTotal -= 1
            jobs[record.job]?.delayed[record.id] = again
            waitingTotal += 1
            retried.insert(record.id)
            events.retried(again, after: backoff)
            Task {
                try? await Task.sleep(for: backoff)
                self.backoffOver(job: record.job, taskID: record.id)
            }
        }
        pump()
        return ticket
    }

    /// A retry's backoff is over: it queues for a slot (unless killed or covered meanwhile, or
    /// the agent is stopping: the journal holds it queued for the next start).
    func backoffOver(job: String, taskID: String) {
        guard !shuttingDown, let again = jobs[job]?.delayed.removeValue(forKey: taskID) else { return }
        jobs[job]?.queue.append(again)
        pump()
    }

    /// The last line of every task log: how the task ended, with its seed result code, the
    /// exit code or signal, the timeout, the kill, or the thrown error's description.
    static func closingLine(_ outcome: ExecutionOutcome, durationMs: Int64, shutdown: Bool) -> String {
        let took = "after \(durationMs) ms"
        if shutdown {
            return "[qagent] task stopped by the agent's shutdown \(took); the job's recover policy settles it at the next start"
        }
        return closingLine(result: outcome.result, message: outcome.message, durationMs: durationMs)
    }

    /// The closing line of a task that ended with `result`: also what the log of a task that
    /// succeeded silently (no file) reads as.
    static func closingLine(result: TaskResult, message: String, durationMs: Int64) -> String {
        let ending = result.ending(message: message)
        let how = result == .none ? ending : "\(ending) (\(result.rawValue))"
        let detail = message.count > 2_000 ? String(message.prefix(2_000)) + "…" : message
        return "[qagent] task \(how) after \(durationMs) ms: \(detail)"
    }
}
