import Synchronization

/// How many tasks the runner holds — running, finishing (completion being journaled),
/// queued, reserved (admission being journaled) and delayed (retry backoff) — readable from
/// any thread without a hop to the runner. The runner publishes it in the same turn that
/// changes its state, so before any dispatch is acknowledged; the HTTP event loop answers an
/// idle host's `/api/check` from it (``IdleCheckHandler``).
public final class RunnerActivity: Sendable {
    private let tasks = Atomic<Int>(0)

    /// Whether the runner holds no task at all (the same as its active jobs being empty).
    public var isIdle: Bool { tasks.load(ordering: .sequentiallyConsistent) == 0 }

    func publish(_ count: Int) { tasks.store(count, ordering: .sequentiallyConsistent) }
}
