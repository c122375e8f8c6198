import Synchronization

/// Which online members serve which job, as of the last heartbeat: who fires a job's cron
/// times (rendezvous hashing), without a query per fire.
final class ClusterView: Sendable {
    private let servers = Mutex<[String: [String]]>([:])  // job -> addresses, sorted

    func update(_ jobServers: [String: [String]]) {
        servers.withLock { $0 = jobServers.mapValues { $0.sorted() } }
    }

    /// This agent's rank among the online servers of `job` for firing it: 0 fires at the
    /// scheduled time, 1 is the backup a moment later, `nil` (or higher) does nothing. Every
    /// agent computes the same order from the same member list, so the database sees one
    /// statement per fire (two when the backup acts), however many agents serve the job.
    func fireRank(job: String, address: String) -> Int? {
        let members = servers.withLock { $0[job] ?? [] }
        // Before the first view (or if this agent is missing from it), act as the owner: the
        // unique fire key keeps that safe.
        guard !members.isEmpty, members.contains(address) else { return 0 }
        let ordered = members.sorted { Self.weight(job, $0) > Self.weight(job, $1) || (Self.weight(job, $0) == Self.weight(job, $1) && $0 < $1) }
        return ordered.firstIndex(of: address)
    }

    /// FNV-1a of "job|address": stable across processes and hosts (Swift's `Hasher` is seeded
    /// per process).
    static func weight(_ job: String, _ address: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in (job + "|" + address).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        // A final mix, so that addresses differing in one byte spread.
        hash ^= hash >> 33
        hash = hash &* 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        return hash
    }
}
