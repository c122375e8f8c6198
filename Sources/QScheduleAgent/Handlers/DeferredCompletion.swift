import Synchronization

/// Ends a task whose handler returned before its work was done (``TaskContext/deferCompletion()``):
/// the work goes on elsewhere — a callback, a process's termination handler, a message consumer —
/// and calls ``complete()`` or ``fail(_:)`` when it is over.
///
/// Until then the task is running for the agent: `/api/check` lists it, `kill.do` and the job's
/// `timeout` stop it (the task is recorded 499 or 504 and a later `complete()` changes nothing),
/// and a crash leaves it to be settled per the job's `recover`, like any running task. Only the
/// first call counts; it returns `false` when the task had already ended.
///
/// Give jobs whose handlers defer a `timeout`: a handle that is dropped without being called
/// leaves its task running until it is killed.
public struct TaskCompletionHandle: Sendable {
    let completion: DeferredCompletion

    /// The task succeeded (200). `false` when it had already ended (completed, failed, stopped).
    @discardableResult
    public func complete() -> Bool {
        completion.settle(.success(()))
    }

    /// The task failed (500), recorded with `error`'s description as a thrown error would be.
    /// `false` when it had already ended.
    @discardableResult
    public func fail(_ error: any Error) -> Bool {
        completion.settle(.failure(error))
    }

    /// Whether the agent stopped the task (timeout, kill, cover, shutdown) before it was
    /// completed: the work can give up.
    public var isCancelled: Bool { completion.isStopped }

    /// Runs `body` once if the agent stops the task before it is completed — at once when it
    /// already has — so that the work can be stopped too (terminate the child process, cancel
    /// the request). Never called once the task is completed or failed.
    public func whenStopped(_ body: @escaping @Sendable () -> Void) {
        completion.whenStopped(body)
    }
}

/// The state behind one task's ``TaskCompletionHandle``: whether the handler deferred, the
/// result once given, the runner waiting for it, and what to run if the task is stopped.
final class DeferredCompletion: Sendable {
    private enum Phase {
        case running
        case deferred
        case settled(Result<Void, any Error>)
        case stopped
    }

    private struct State {
        var phase = Phase.running
        /// The runner, waiting in ``result()``.
        var waiter: CheckedContinuation<Void, any Error>?
        /// Run once by ``stop()``; dropped when the task is settled.
        var onStop: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    /// The handler asked to complete later.
    func deferCompletion() {
        state.withLock { state in
            if case .running = state.phase { state.phase = .deferred }
        }
    }

    /// Whether ``deferCompletion()`` was called (and the result may still be to come).
    var isDeferred: Bool {
        state.withLock { state in
            switch state.phase {
            case .running, .stopped: return false
            case .deferred, .settled: return true
            }
        }
    }

    var isStopped: Bool {
        state.withLock { state in
            if case .stopped = state.phase { return true }
            return false
        }
    }

    /// The first result wins; `false` for any later one.
    func settle(_ result: Result<Void, any Error>) -> Bool {
        let (settled, waiter): (Bool, CheckedContinuation<Void, any Error>?) = state.withLock { state in
            switch state.phase {
            case .running, .deferred:
                state.phase = .settled(result)
                state.onStop = []
                defer { state.waiter = nil }
                return (true, state.waiter)
            case .settled, .stopped:
                return (false, nil)
            }
        }
        waiter?.resume(with: result)
        return settled
    }

    /// Waits for the result; throws `CancellationError` when the waiting task is cancelled
    /// (the agent stopped the task), after which results are refused.
    func result() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready: Result<Void, any Error>? = state.withLock { state in
                    switch state.phase {
                    case .settled(let result):
                        return result
                    case .stopped:
                        return .failure(CancellationError())
                    case .running, .deferred:
                        state.phase = .deferred
                        state.waiter = continuation
                        return nil
                    }
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            stop()
        }
    }

    func whenStopped(_ body: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            switch state.phase {
            case .stopped: return true
            case .settled: return false
            case .running, .deferred:
                state.onStop.append(body)
                return false
            }
        }
        if runNow { body() }
    }

    /// The agent stopped the task: a waiter is released with `CancellationError`, later
    /// results are refused, and the ``whenStopped(_:)`` handlers run.
    func stop() {
        let (waiter, onStop): (CheckedContinuation<Void, any Error>?, [@Sendable () -> Void]) = state.withLock { state in
            switch state.phase {
            case .running, .deferred:
                state.phase = .stopped
                defer { (state.waiter, state.onStop) = (nil, []) }
                return (state.waiter, state.onStop)
            case .settled, .stopped:
                return (nil, [])
            }
        }
        waiter?.resume(throwing: CancellationError())
        for handler in onStop { handler() }
    }
}
