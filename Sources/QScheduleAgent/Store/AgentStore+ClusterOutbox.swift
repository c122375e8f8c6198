import Foundation
import GRDB

/// A finished task's result as the cluster's database takes it.
public struct ClusterResult: Sendable, Equatable {
    /// Position in `cluster_outbox`.
    public var seq: Int64
    public var taskID: String
    public var result: Int
    public var attempt: Int
    public var startTime: Int64
    public var endTime: Int64
    public var duration: Int64
    public var message: String
}

extension AgentStore {
    /// The oldest results waiting for the cluster, at most `limit`, read from the task rows.
    public func clusterOutboxBatch(limit: Int) throws -> [ClusterResult] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT o.seq, o.task_id, t.result, t.attempt, t.start_time, t.end_time, t.duration, t.message
                FROM cluster_outbox o JOIN task t ON t.id = o.task_id ORDER BY o.seq LIMIT ?
                """, arguments: [limit]).map { row in
                ClusterResult(
                    seq: row[0], taskID: row[1], result: row[2], attempt: row[3],
                    startTime: row[4] ?? 0, endTime: row[5] ?? 0, duration: row[6] ?? 0, message: row[7] ?? "")
            }
        }
    }

    /// How many results wait for the cluster's database.
    public func clusterOutboxDepth() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cluster_outbox") ?? 0 }
    }

    /// Removes the results up to `seq` (the cluster took them), and entries whose task was pruned.
    public func deleteClusterOutbox(upTo seq: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM cluster_outbox WHERE seq <= ?", arguments: [seq])
            try db.execute(sql: "DELETE FROM cluster_outbox WHERE task_id NOT IN (SELECT id FROM task)")
        }
    }
}
