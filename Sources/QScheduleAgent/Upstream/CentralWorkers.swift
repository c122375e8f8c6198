import Foundation
import Logging

/// Tells the central scheduler (`[scheduler] url`) whether this host takes work, through the
/// seed's own `POST /api2/workers/state.do`, one call per job of this host (DESIGN §5, §7).
///
/// Each of the seven documented answers has a meaning here (``Outcome``). Drain and resume
/// call it; a drain that the central server refuses with `所有机器不能全部下线` is undone there
/// and not done locally unless forced. What drain told the central server is remembered in
/// the store, so the next start (which takes work again) tells it the host is back.
public actor CentralWorkers {
    /// What the central server made of one job's call.
    public struct Outcome: Encodable, Sendable, Equatable {
        public enum Kind: String, Encodable, Sendable {
            /// `操作成功`, or `可能存在未操作成功的机器,请调用查看接口验证` and the workers list
            /// confirmed the new state.
            case applied
            /// `可能存在未操作成功的机器,...` and the central server does not list this address
            /// for the job: there was nothing to switch.
            case notListed = "not_listed"
            /// `所有机器不能全部下线`: this host is the job's last online worker there.
            case lastWorker = "last_worker"
            /// `参数错误`, `授权失败`, `workers json 格式非法`, `操作失败`, an unverifiable
            /// partial answer, or no usable answer at all.
            case failed
        }

        public var job: String
        public var outcome: Kind
        /// The central server's message, or the transport error.
        public var message: String
    }

    /// What `/api2/agent/status.do` shows under `central`.
    public struct Snapshot: Encodable, Sendable {
        public var url: String
        /// Drain told the central server this host is offline, and no resume has told it since.
        public var toldOffline: Bool
        /// The outcomes of the last drain or resume, by job.
        public var lastOutcomes: [Outcome]
    }

    static let offlineFact = "central_offline"

    private let settings: SchedulerSettings
    private let store: AgentStore
    private let identity: AgentIdentity
    private let client: SeedClient
    private let logger: Logger
    private var lastOutcomes: [Outcome] = []

    public init(settings: SchedulerSettings, store: AgentStore, identity: AgentIdentity, token: String, logger: Logger) {
        self.settings = settings
        self.store = store
        self.identity = identity
        self.logger = logger
        client = SeedClient(baseURL: settings.url, token: token, timeout: TimeInterval(settings.timeout), tls: settings.tls)
    }

    public func snapshot() -> Snapshot {
        Snapshot(url: settings.url.absoluteString, toldOffline: toldOffline, lastOutcomes: lastOutcomes)
    }

    /// Whether a drain's "offline" is still standing at the central server.
    public var toldOffline: Bool { ((try? store.fact(Self.offlineFact)) ?? nil) != nil }

    /// Tells the central server this host is offline for every job in `jobs`. When it refuses
    /// any of them as the last worker and `undoOnLastWorker` is set, the jobs already switched
    /// there are switched back (the drain does not happen). Returns one outcome per job.
    public func takeOffline(jobs: [String], undoOnLastWorker: Bool) async -> [Outcome] {
        var outcomes = await set(online: false, jobs: jobs)
        if undoOnLastWorker, outcomes.contains(where: { $0.outcome == .lastWorker }) {
            let switched = outcomes.filter { $0.outcome == .applied }.map(\.job)
            let undone = await set(online: true, jobs: switched)
            for undo in undone where undo.outcome != .applied {
                logger.error("could not undo offline at the central scheduler", metadata: ["job": "\(undo.job)", "answer": "\(undo.message)"])
            }
            outcomes = outcomes.map { outcome in
                guard outcome.outcome == .applied else { return outcome }
                let undo = undone.first { $0.job == outcome.job }
                return Outcome(job: outcome.job, outcome: .failed,
                               message: "undone: another job's last worker is this host" + (undo?.outcome == .applied ? "" : " (undo failed: \(undo?.message ?? "?"))"))
            }
        } else if outcomes.contains(where: { $0.outcome == .applied }) {
            try? store.setFact(Self.offlineFact, String(Date().epochMilliseconds))
        }
        lastOutcomes = outcomes
        return outcomes
    }

    /// Tells the central server this host takes work again for every job in `jobs`.
    public func bringOnline(jobs: [String]) async -> [Outcome] {
        let outcomes = await set(online: true, jobs: jobs)
        if outcomes.allSatisfy({ $0.outcome == .applied || $0.outcome == .notListed }) {
            try? store.setFact(Self.offlineFact, nil)
        }
        lastOutcomes = outcomes
        return outcomes
    }

    private func set(online: Bool, jobs: [String]) async -> [Outcome] {
        let address = identity.address
        let client = self.client
        let outcomes = await withTaskGroup(of: Outcome.self) { group in
            for job in jobs {
                group.addTask { await Self.set(online: online, job: job, address: address, client: client) }
            }
            var outcomes: [Outcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        for outcome in outcomes where outcome.outcome == .failed {
            logger.warning("central scheduler did not take the workers change", metadata: [
                "job": "\(outcome.job)", "online": "\(online)", "answer": "\(outcome.message)",
            ])
        }
        return outcomes.sorted { $0.job < $1.job }
    }

    /// One job's call and what its answer means.
    static func set(online: Bool, job: String, address: String, client: SeedClient) async -> Outcome {
        // The seed's form: `workers` is a string holding JSON.
        let workers = JSONValue.object([address: .bool(online)]).jsonText
        let answer: SeedClient.Answer
        do {
            answer = try await client.post("/api2/workers/state.do", json: .object(["jobName": .string(job), "workers": .string(workers)]))
        } catch {
            return Outcome(job: job, outcome: .failed, message: "\(error)")
        }
        let message = answer.message ?? ""
        if answer.ret { return Outcome(job: job, outcome: .applied, message: message) }
        switch message {
        case SeedMessage.allWorkersOffline:
            return Outcome(job: job, outcome: .lastWorker, message: message)
        case SeedMessage.someWorkersNotApplied:
            // The answer itself says: verify with the workers list.
            return await verify(online: online, job: job, address: address, client: client, message: message)
        default:
            return Outcome(job: job, outcome: .failed, message: message.isEmpty ? "ret:false without a message" : message)
        }
    }

    private static func verify(online: Bool, job: String, address: String, client: SeedClient, message: String) async -> Outcome {
        guard let answer = try? await client.get("/api2/workers/\(job).do"), answer.ret, let workers = answer.data?.arrayValue else {
            return Outcome(job: job, outcome: .failed, message: message + " (the workers list could not be read)")
        }
        guard let mine = workers.first(where: { $0["address"]?.stringValue == address }) else {
            return Outcome(job: job, outcome: .notListed, message: message + " (this address is not a worker of the job there)")
        }
        if mine["canSchedule"]?.boolValue == online {
            return Outcome(job: job, outcome: .applied, message: message + " (verified by the workers list)")
        }
        return Outcome(job: job, outcome: .failed, message: message + " (the workers list still shows canSchedule=\(!online))")
    }
}
