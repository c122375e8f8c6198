import Logging
import Synchronization

/// Logs requests refused for their token (`授权失败`) at most once per `interval`, with how
/// many were refused since the previous line — a scanner hammering the port cannot flood
/// the log. The token itself is never logged, only whether one was sent.
final class RefusedTokenLog: Sendable {
    private struct State {
        var lastLine: ContinuousClock.Instant?
        var since = 0
    }

    private let state = Mutex(State())
    private let interval: Duration
    private let logger: Logger

    init(logger: Logger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    func record(route: String, tokenSent: Bool) {
        let now = ContinuousClock.now
        let count = state.withLock { state -> Int? in
            state.since += 1
            if let last = state.lastLine, now - last < interval { return nil }
            defer { state.lastLine = now; state.since = 0 }
            return state.since
        }
        guard let count else { return }
        logger.warning("request refused: wrong or missing token", metadata: [
            "route": "\(route)", "token_sent": "\(tokenSent)", "refused_since_last_line": "\(count)",
        ])
    }
}
