import Synchronization

/// This worker's lease on its cluster tasks (DESIGN §10, failures), on its own monotonic clock.
///
/// Peers may declare a worker dead, and retry its tasks, once its heartbeat (written with the
/// database's clock) is older than `dead_after`. Each successful heartbeat renews the lease
/// from the moment that heartbeat was *sent* (never later than the database wrote it); the
/// lease expires `dead_after - kill_grace - heartbeat_interval` after that, so a worker cut off
/// from the database has stopped its tasks — within `kill_grace` — a heartbeat before any peer
/// may retry them, and two attempts of one task never run at once.
///
/// It also tells how long this agent has been continuously connected: after an outage every
/// heartbeat in the database is old, so an agent settles dead members' tasks only once it has
/// itself been connected for `dead_after` (by then every live member has heartbeated again).
final class ClusterLease: Sendable {
    private struct State {
        var renewedAt: ContinuousClock.Instant?
        var connectedSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// How long a renewal holds.
    let duration: Duration
    /// `dead_after`, for ``settlesDeadMembers``.
    let deadAfter: Duration

    init(settings: ClusterSettings, killGrace: Int) {
        let seconds = settings.deadAfter - killGrace - settings.heartbeatInterval
        duration = .seconds(max(1, seconds))
        deadAfter = .seconds(settings.deadAfter)
    }

    /// A heartbeat (or registration) sent at `sentAt` succeeded.
    func renewed(sentAt: ContinuousClock.Instant) {
        state.withLock { state in
            if state.renewedAt.map({ $0 < sentAt }) ?? true { state.renewedAt = sentAt }
            if state.connectedSince == nil { state.connectedSince = sentAt }
        }
    }

    /// A heartbeat failed: the connection streak ends (the lease runs on until it expires).
    func failed() {
        state.withLock { $0.connectedSince = nil }
    }

    /// Whether the lease holds now; `false` before the first renewal.
    func isValid(at now: ContinuousClock.Instant = .now) -> Bool {
        guard let renewedAt = state.withLock({ $0.renewedAt }) else { return false }
        return now - renewedAt < duration
    }

    /// Whether this agent has been connected long enough to judge other members dead.
    func settlesDeadMembers(at now: ContinuousClock.Instant = .now) -> Bool {
        guard let since = state.withLock({ $0.connectedSince }) else { return false }
        return now - since >= deadAfter
    }
}
