import Synchronization

/// The "stop this task" switch shared by the runner and the task's executor.
///
/// The runner flips it on timeout, kill, cover or shutdown; the executor registers what
/// stopping means for it (signal a process group, cancel a Swift handler's task). Callbacks
/// registered after the switch flipped run at once; each runs exactly once.
final class TaskStopper: Sendable {
    private struct State {
        var stopped = false
        var callbacks: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    /// Whether a stop was requested.
    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Requests the stop; later calls do nothing.
    func stop() {
        let callbacks = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.stopped else { return [] }
            state.stopped = true
            defer { state.callbacks = [] }
            return state.callbacks
        }
        for callback in callbacks { callback() }
    }

    /// Runs `callback` when the stop is requested (now, if it already was).
    func whenStopped(_ callback: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.stopped { return true }
            state.callbacks.append(callback)
            return false
        }
        if runNow { callback() }
    }
}
