import Foundation
import GRDB
import Synchronization

/// The number of reports waiting in the outbox.
///
/// Kept by deltas only: each commit that queues reports adds them, each removal subtracts
/// the rows it deleted. (Setting it from a `COUNT(*)` read inside the removal's transaction
/// lost the addition of a report committed in between, and the reporter then slept on a
/// non-empty outbox.) A report committed and delivered before its addition is counted may
/// leave it below zero for an instant; it reads as 0. The reporter also reads the table every
/// 5 s whatever the count says.
public final class OutboxDepth: Sendable {
    private let count: Mutex<Int>
    /// Signalled whenever a report is queued; the reporter waits on it while the outbox is empty.
    let added = WakeSignal()

    init(_ initial: Int) {
        count = Mutex(initial)
    }

    /// Reports waiting now.
    public var value: Int { max(0, count.withLock { $0 }) }

    func add(_ n: Int) {
        count.withLock { $0 += n }
        added.signal()
    }

    func subtract(_ n: Int) { count.withLock { $0 -= n } }
}

/// One queued report: its outbox position and the JSON object sent for it.
public struct OutboxEntry: Sendable, Equatable {
    public var seq: Int64
    public var taskID: String
    public var payload: String
    /// `report` (a finished task, sent in `{"reports":[...]}`) or `alert` (`{"alerts":[...]}`).
    public var kind: String = "report"
}

extension AgentStore {
    // MARK: Report outbox

    /// The oldest queued entries of one kind (the oldest entry's): at most `limit`, and at most
    /// `maxBytes` of payload (the first entry always, however large, so that nothing can
    /// block the outbox).
    public func outboxBatch(limit: Int, maxBytes: Int) throws -> [OutboxEntry] {
        try pool.read { db in
            var entries: [OutboxEntry] = []
            var bytes = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, task_id, payload, kind FROM outbox ORDER BY seq LIMIT ?", arguments: [limit])
            while let row = try rows.next() {
                let payload: String = row["payload"]
                let kind: String = row["kind"]
                bytes += payload.utf8.count + 1
                if !entries.isEmpty, bytes > maxBytes || kind != entries[0].kind { break }
                entries.append(OutboxEntry(seq: row["seq"], taskID: row["task_id"], payload: payload, kind: kind))
            }
            return entries
        }
    }

    /// Removes delivered reports; ``outboxDepth`` loses the rows deleted.
    public func removeFromOutbox(_ seqs: [Int64]) async throws {
        let removed = try await pool.write { db in
            var removed = 0
            for seq in seqs {
                try db.execute(sql: "DELETE FROM outbox WHERE seq = ?", arguments: [seq])
                removed += db.changesCount
            }
            return removed
        }
        outboxDepth.subtract(removed)
    }

    /// When the oldest queued report was queued (epoch ms), or `nil` when the outbox is empty.
    public func oldestOutboxEntry() throws -> Int64? {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT enqueued_at FROM outbox ORDER BY seq LIMIT 1") }
    }

    // MARK: Facts

    /// A small fact the agent keeps about itself, or `nil`.
    public func fact(_ name: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM agent_fact WHERE name = ?", arguments: [name]) }
    }

    /// Records (or, with `nil`, forgets) a fact.
    public func setFact(_ name: String, _ value: String?) throws {
        try pool.write { db in
            if let value {
                try db.execute(sql: "INSERT INTO agent_fact (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                               arguments: [name, value])
            } else {
                try db.execute(sql: "DELETE FROM agent_fact WHERE name = ?", arguments: [name])
            }
        }
    }
}
