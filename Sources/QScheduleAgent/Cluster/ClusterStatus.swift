import Foundation
import Logging
import PostgresNIO

/// What `qagent cluster status` shows: the members, how long ago each heartbeat was (database
/// clock), draining, their jobs, and jobs whose definitions differ between hosts.
public struct ClusterStatus: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var address: String
        public var hostname: String
        public var version: String
        public var draining: Bool
        /// Milliseconds since its last heartbeat, on the database's clock.
        public var heartbeatAgeMs: Int64
        /// Whether the heartbeat is younger than `dead_after`.
        public var online: Bool
        public var jobs: [String]
    }

    /// One job's definitions that differ, each with the hosts holding it.
    public struct Difference: Sendable, Equatable {
        public var job: String
        public var variants: [(definition: String, addresses: [String])]

        public static func == (lhs: Difference, rhs: Difference) -> Bool {
            lhs.job == rhs.job && lhs.variants.map(\.definition) == rhs.variants.map(\.definition)
                && lhs.variants.map(\.addresses) == rhs.variants.map(\.addresses)
        }
    }

    public var members: [Member]
    public var differences: [Difference]

    /// Reads the status; a member is online while its heartbeat is younger than `deadAfter` seconds.
    static func read(_ client: PostgresClient, deadAfter: Int, logger: Logger) async throws -> ClusterStatus {
        var members: [Member] = []
        let rows = try await client.query("""
            SELECT address, hostname, version, draining, (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint
            FROM qagent_member ORDER BY address
            """, logger: logger)
        for try await (address, hostname, version, draining, age) in rows.decode((String, String, String, Bool, Int64).self) {
            members.append(Member(address: address, hostname: hostname, version: version, draining: draining,
                                  heartbeatAgeMs: age, online: age < Int64(deadAfter) * 1000, jobs: []))
        }
        var definitions: [String: [String: [String]]] = [:]  // job -> definition -> addresses
        let jobRows = try await client.query(
            "SELECT job, address, definition::text FROM qagent_member_job ORDER BY job, address", logger: logger)
        for try await (job, address, definition) in jobRows.decode((String, String, String).self) {
            if let index = members.firstIndex(where: { $0.address == address }) { members[index].jobs.append(job) }
            // jsonb's own text spaces its members; shown in the agent's compact, sorted form.
            let canonical = JSONValue(parsing: definition)?.jsonText ?? definition
            definitions[job, default: [:]][canonical, default: []].append(address)
        }
        let differences = definitions.filter { $0.value.count > 1 }.map { job, variants in
            Difference(job: job, variants: variants.map { ($0.key, $0.value.sorted()) }.sorted { $0.addresses.first ?? "" < $1.addresses.first ?? "" })
        }.sorted { $0.job < $1.job }
        return ClusterStatus(members: members, differences: differences)
    }

    /// The status as aligned text.
    public var text: String {
        var lines = ["members \(members.count)"]
        let width = max(16, members.map(\.address.count).max() ?? 0)
        for member in members {
            let age = String(format: "%.1f s ago", Double(member.heartbeatAgeMs) / 1000)
            var state = member.online ? "online" : "dead"
            if member.draining { state += ", draining" }
            lines.append("  " + member.address.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                + "\(state.padding(toLength: 18, withPad: " ", startingAt: 0))heartbeat \(age)  \(member.hostname)  qagent \(member.version)  jobs \(member.jobs.count)")
        }
        let jobs = Set(members.flatMap(\.jobs)).sorted()
        lines.append("jobs \(jobs.count)")
        for job in jobs {
            let holders = members.filter { $0.jobs.contains(job) }
            lines.append("  \(job): \(holders.filter(\.online).count) online of \(holders.count)")
        }
        if differences.isEmpty {
            lines.append("definitions: the same on every host")
        } else {
            for difference in differences {
                lines.append("definitions of \(difference.job) differ:")
                for variant in difference.variants {
                    lines.append("  \(variant.addresses.joined(separator: ", ")): \(variant.definition)")
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
