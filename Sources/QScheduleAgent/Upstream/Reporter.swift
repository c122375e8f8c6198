import Foundation
import Logging
import ServiceLifecycle

/// Delivers the report outbox to `[report] url` and sends the heartbeat there (DESIGN §7).
///
/// At-least-once: a batch leaves the outbox only after the receiver answered HTTP 2xx with a
/// `{"ret":true}` envelope. Anything else (no connection, a timeout, a 5xx, a `ret:false`,
/// a body that is not an envelope) keeps the batch and waits: capped exponential backoff
/// with jitter, or at least the receiver's `Retry-After`. A receiver deduplicates by `taskId`.
/// At shutdown the outbox is flushed for up to `flush_timeout` seconds; the rest is sent
/// after the next start.
public actor Reporter: Service {
    /// What `/api2/agent/status.do` shows under `report`.
    public struct Snapshot: Encodable, Sendable {
        public var url: String
        /// Reports waiting.
        public var depth: Int
        public var outboxMax: Int
        /// Age of the oldest waiting report in ms; 0 when none waits.
        public var oldestAgeMs: Int64
        /// Reports delivered since the agent started.
        public var delivered: Int
        /// Failed delivery attempts in a row (0 = the last one worked).
        public var consecutiveFailures: Int
        public var lastError: String?
        /// When the last batch was delivered (epoch ms).
        public var lastDeliveryAt: Int64?
        /// When the next attempt is due (epoch ms), while backing off.
        public var nextAttemptAt: Int64?
        public var heartbeatsSent: Int
        public var heartbeatsFailed: Int
    }

    private let settings: ReportSettings
    private let store: AgentStore
    private let runner: TaskRunner
    private let identity: AgentIdentity
    private let token: String
    private let transport: HTTPTransport
    private let logger: Logger

    private var delivered = 0
    private var failures = 0
    private var lastError: String?
    private var lastDeliveryAt: Int64?
    private var nextAttemptAt: Int64?
    private var heartbeatsSent = 0
    private var heartbeatsFailed = 0

    /// A reporter of `store`'s outbox; `token` is sent as `Q-Server-Token`.
    public init(settings: ReportSettings, store: AgentStore, runner: TaskRunner, identity: AgentIdentity, token: String, logger: Logger) {
        self.settings = settings
        self.store = store
        self.runner = runner
        self.identity = identity
        self.token = token
        self.logger = logger
        transport = HTTPTransport(timeout: TimeInterval(settings.timeout), tls: settings.tls)
    }

    // MARK: Service

    /// Delivers until graceful shutdown, then flushes for up to `flush_timeout` seconds.
    public nonisolated func run() async throws {
        await withDiscardingTaskGroup { group in
            if settings.heartbeatInterval > 0 {
                group.addTask { await cancelWhenGracefulShutdown { await self.heartbeatLoop() } }
            }
            group.addTask {
                await cancelWhenGracefulShutdown { await self.deliveryLoop() }
                await self.flush(within: .seconds(self.settings.flushTimeout))
            }
        }
    }

    /// The state shown by the status endpoint.
    public func snapshot() -> Snapshot {
        let oldest = (try? store.oldestOutboxEntry()) ?? nil
        return Snapshot(
            url: settings.url.absoluteString, depth: store.outboxDepth.value, outboxMax: settings.outboxMax,
            oldestAgeMs: oldest.map { max(0, Date().epochMilliseconds - $0) } ?? 0,
            delivered: delivered, consecutiveFailures: failures, lastError: lastError,
            lastDeliveryAt: lastDeliveryAt, nextAttemptAt: nextAttemptAt,
            heartbeatsSent: heartbeatsSent, heartbeatsFailed: heartbeatsFailed)
    }

    // MARK: Delivery

    private func deliveryLoop() async {
        while !Task.isCancelled {
            if store.outboxDepth.value == 0 {
                // Woken by a queued report; the table is also read every 5 s whatever the
                // count says, so no report can wait on a wrong count for longer.
                await store.outboxDepth.added.wait(timeout: .seconds(5))
            }
            switch await deliverOneBatch() {
            case .delivered:
                continue
            case .empty:
                if store.outboxDepth.value > 0 { await store.outboxDepth.added.wait(timeout: .seconds(5)) }
            case .failed(let wait):
                try? await Task.sleep(for: wait)
            }
        }
    }

    /// Delivers what it can until the outbox is empty or `limit` has passed.
    private func flush(within limit: Duration) async {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < deadline, store.outboxDepth.value > 0, !Task.isCancelled {
            switch await deliverOneBatch() {
            case .delivered, .empty:
                continue
            case .failed(let wait):
                let left = deadline - ContinuousClock.now
                guard left > .zero else { break }
                try? await Task.sleep(for: min(wait, left))
            }
        }
        let left = store.outboxDepth.value
        if left > 0 {
            logger.warning("stopping with undelivered reports; they are sent after the next start", metadata: ["reports": "\(left)"])
        }
    }

    private enum BatchOutcome {
        case delivered
        case empty
        case failed(wait: Duration)
    }

    private func deliverOneBatch() async -> BatchOutcome {
        let batch: [OutboxEntry]
        do {
            batch = try store.outboxBatch(limit: settings.batchMax, maxBytes: settings.batchMaxBytes)
        } catch {
            return fail("cannot read the outbox: \(error)", retryAfter: nil)
        }
        guard !batch.isEmpty else { return .empty }
        let key = batch[0].kind == "alert" ? "alerts" : "reports"
        let body = Data(("{\"\(key)\":[" + batch.map(\.payload).joined(separator: ",") + "]}").utf8)
        let reply: HTTPTransport.Reply
        do {
            reply = try await transport.send("POST", settings.url, token: token, body: body)
        } catch {
            return fail(error.description, retryAfter: nil)
        }
        if let problem = Self.problem(with: reply) {
            return fail(problem, retryAfter: Self.retryAfter(reply))
        }
        do {
            try await store.removeFromOutbox(batch.map(\.seq))
        } catch {
            // Delivered but still queued: it is sent again later (the receiver deduplicates).
            return fail("cannot remove delivered reports from the outbox: \(error)", retryAfter: nil)
        }
        if failures > 0 {
            logger.notice("reports delivered again", metadata: ["after_failures": "\(failures)"])
        }
        delivered += batch.count
        failures = 0
        lastError = nil
        nextAttemptAt = nil
        lastDeliveryAt = Date().epochMilliseconds
        return .delivered
    }

    private func fail(_ problem: String, retryAfter: Duration?) -> BatchOutcome {
        failures += 1
        if failures == 1 || problem != lastError {
            logger.warning("report delivery failed; retrying with backoff", metadata: [
                "error": "\(problem)", "failures": "\(failures)", "outbox": "\(store.outboxDepth.value)",
            ])
        }
        lastError = problem
        let wait = Self.backoff(failures: failures, minMs: settings.backoffMinMs, maxMs: settings.backoffMaxMs, retryAfter: retryAfter)
        nextAttemptAt = Date().epochMilliseconds + Int64(wait / .milliseconds(1))
        return .failed(wait: wait)
    }

    /// Why an answer does not count as delivered, or `nil` when it does.
    static func problem(with reply: HTTPTransport.Reply) -> String? {
        guard (200..<300).contains(reply.status) else {
            return "receiver answered HTTP \(reply.status)"
        }
        guard let envelope = JSONValue(parsing: reply.body), let ret = envelope["ret"]?.boolValue else {
            return "receiver answered HTTP \(reply.status) without a seed envelope"
        }
        guard ret else {
            return "receiver refused the reports: \(envelope["message"]?.stringValue ?? "no message")"
        }
        return nil
    }

    /// The wait before attempt `failures + 1`: `min_ms * 2^(failures-1)` capped at `max_ms`,
    /// of which a random half is jitter ("equal jitter"); never less than `retryAfter`, which
    /// itself is capped at an hour so that a broken header cannot stop delivery for good.
    static func backoff(failures: Int, minMs: Int, maxMs: Int, retryAfter: Duration?) -> Duration {
        let exponent = min(max(failures - 1, 0), 30)
        let capped = min(maxMs, minMs << exponent)
        let jittered = capped / 2 + Int.random(in: 0...max(0, capped - capped / 2))
        let base = Duration.milliseconds(jittered)
        guard let retryAfter else { return base }
        return max(base, min(retryAfter, .seconds(3600)))
    }

    /// `Retry-After` as delay-seconds or an HTTP date; `nil` when absent or unreadable.
    static func retryAfter(_ reply: HTTPTransport.Reply, now: Date = Date()) -> Duration? {
        guard let text = reply.header("Retry-After")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Int(text) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSince(now) * 1000)))
    }

    // MARK: Heartbeat

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            await sendHeartbeat()
            try? await Task.sleep(for: .seconds(settings.heartbeatInterval))
        }
    }

    /// `{"heartbeat":{"address","version","draining","shuttingDown","running":[ids],"outbox":n,"time"}}`;
    /// not stored: a missed heartbeat is only counted.
    private func sendHeartbeat() async {
        let heartbeat: JSONValue = .object(["heartbeat": .object([
            "address": .string(identity.address),
            "version": .string(AgentVersion.current),
            "draining": .bool(await runner.isDraining),
            "shuttingDown": .bool(await runner.shuttingDown),
            "running": .array(await runner.runningTaskIDs.map(JSONValue.string)),
            "outbox": .int(Int64(store.outboxDepth.value)),
            "time": .int(Date().epochMilliseconds),
        ])])
        do {
            let reply = try await transport.send("POST", settings.url, token: token, body: Data(heartbeat.jsonText.utf8))
            if let problem = Self.problem(with: reply) { throw HTTPTransport.Failure.other(problem) }
            heartbeatsSent += 1
        } catch {
            heartbeatsFailed += 1
            if heartbeatsFailed == 1 || heartbeatsFailed % 100 == 0 {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)", "failed": "\(heartbeatsFailed)"])
            }
        }
    }
}
