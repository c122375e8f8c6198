import Foundation

/// One task's handler, run while listening for a stop (timeout, kill, cover, shutdown).
///
/// A stop signals a command's whole process group (SIGTERM, `kill_grace`, SIGKILL) or cancels
/// a Swift handler. A Swift handler still running `kill_grace` + 1 s after the stop is given
/// up: the task is recorded with the stop's state and the handler's late result is discarded.
struct StoppableRun: Sendable {
    let store: AgentStore
    /// Where a command's param file goes (see ``CommandRunner``).
    let runDirectory: String
    /// This agent process's `QSCHEDULE_AGENT_INSTANCE`, recorded with each command's pid.
    let instance: String
    /// Seconds between SIGTERM and SIGKILL, and what a Swift handler gets to honour cancellation.
    let killGrace: Int

    private enum Arm: Sendable {
        case finished(ExecutionOutcome)
        case stop(StopReason)
        case abandoned
        case idle
    }

    /// Runs the handler until it ends, or until a stop from `stops` (or the timeout, which
    /// yields into `stop`) has been carried out.
    func run(
        _ executor: TaskExecutor, context: TaskContext, timeout: Int, startTime: Int64,
        stops: AsyncStream<StopReason>, stop: AsyncStream<StopReason>.Continuation
    ) async -> ExecutionOutcome {
        let store = self.store
        let runDirectory = self.runDirectory
        let instance = self.instance
        // A command's teardown ends by itself (SIGKILL after the grace); the longer limit is
        // only a safety net. A Swift handler gets the grace to honour cancellation.
        let giveUpAfter: Duration
        switch executor {
        case .command: giveUpAfter = .seconds(killGrace) + .seconds(5)
        case .swift: giveUpAfter = .seconds(killGrace) + .seconds(1)
        }
        let stopper = TaskStopper()
        let (outcomes, outcomeSink) = AsyncStream.makeStream(of: ExecutionOutcome.self, bufferingPolicy: .bufferingNewest(1))
        // Unstructured on purpose: a Swift handler that ignores cancellation must not hold this
        // task (and the runner's slot) forever; it is awaited through `outcomes` instead.
        let work = Task {
            let outcome: ExecutionOutcome
            switch executor {
            case .command(let runner):
                outcome = await runner.run(context: context, runDirectory: runDirectory, stopper: stopper) { pid in
                    // Not awaited: the child runs meanwhile; the completion commits after it.
                    let identity = ProcessIdentity(pid: pid, startTicks: ProcessIdentity.startTicks(of: pid), instance: instance)
                    store.recordProcessSoon(context.taskID, process: identity)
                }
            case .swift(let handler):
                outcome = await Self.runSwiftHandler(handler, context: context)
            }
            outcomeSink.yield(outcome)
            outcomeSink.finish()
        }
        if case .swift = executor { stopper.whenStopped { work.cancel() } }

        return await withTaskCancellationHandler {
            await withTaskGroup(of: Arm.self) { group in
                group.addTask {
                    for await outcome in outcomes { return .finished(outcome) }
                    return .idle
                }
                group.addTask {
                    for await reason in stops { return .stop(reason) }
                    return .idle
                }
                if timeout > 0 {
                    group.addTask {
                        try? await Task.sleep(for: .seconds(timeout))
                        if !Task.isCancelled { stop.yield(.timeout(seconds: timeout)) }
                        return .idle
                    }
                }
                var stopReason: StopReason?
                while let arm = await group.next() {
                    switch arm {
                    case .finished(let outcome):
                        group.cancelAll()
                        stop.finish()
                        guard let stopReason else { return outcome }
                        return ExecutionOutcome(
                            result: stopReason.result, exitCode: outcome.exitCode, signal: outcome.signal,
                            message: stopReason.message, stoppedBy: stopReason)
                    case .stop(let reason):
                        guard stopReason == nil else { continue }
                        stopReason = reason
                        stopper.stop()
                        group.addTask {
                            try? await Task.sleep(for: giveUpAfter)
                            return Task.isCancelled ? .idle : .abandoned
                        }
                    case .abandoned:
                        group.cancelAll()
                        stop.finish()
                        let reason = stopReason ?? .killed
                        return ExecutionOutcome(
                            result: reason.result,
                            message: reason.message + "; the handler did not stop within the grace period, its late result is discarded",
                            stoppedBy: reason)
                    case .idle:
                        continue
                    }
                }
                // Every arm ended without an outcome: this task was cancelled (shutdown).
                return ExecutionOutcome(result: .lost, message: "stopped by shutdown")
            }
        } onCancel: {
            stopper.stop()
        }
    }

    private static func runSwiftHandler(_ handler: any JobHandler, context: TaskContext) async -> ExecutionOutcome {
        let (result, message) = await HandlerCall.run(handler, context: context)
        return ExecutionOutcome(result: result, message: message)
    }
}
