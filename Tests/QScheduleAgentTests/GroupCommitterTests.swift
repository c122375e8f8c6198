import Foundation
import GRDB
import Synchronization
import Testing
@testable import QScheduleAgent

/// The journal's group commit (DESIGN §4) on a real SQLite file: writes that arrive together
/// share one transaction, and one failing write fails alone, with everything it did undone.
@Suite("Journal group commit")
struct GroupCommitterTests {
    /// A committer on a fresh database with `item(id PRIMARY KEY)`, and the database.
    static func withCommitter(_ body: (GroupCommitter, DatabasePool) async throws -> Void) async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pool = try DatabasePool(path: dir + "/journal.sqlite")
        try await pool.write { db in try db.execute(sql: "CREATE TABLE item (id TEXT PRIMARY KEY NOT NULL)") }
        try await body(GroupCommitter(pool: pool), pool)
    }

    /// Holds GRDB's writer inside a transaction until `release` is signalled, so the writes
    /// submitted meanwhile form the next batch together.
    static func holdWriter(_ committer: GroupCommitter) -> (ticket: CommitTicket, release: DispatchSemaphore) {
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let ticket = committer.submit { _ in
            entered.signal()
            release.wait()
        }
        entered.wait()
        return (ticket, release)
    }

    @Test("a failing write in a batch fails alone: its earlier statements are undone, the writes before and after it commit, in one transaction")
    func failingWriteFailsAlone() async throws {
        try await Self.withCommitter { committer, pool in
            try await committer.write { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('taken')") }
            let before = committer.statistics
            let (held, release) = Self.holdWriter(committer)
            let first = committer.submit { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('a')") }
            // Inserts one row, then collides: the whole write must vanish.
            let failing = committer.submit { db in
                try db.execute(sql: "INSERT INTO item (id) VALUES ('partial')")
                try db.execute(sql: "INSERT INTO item (id) VALUES ('taken')")
            }
            let last = committer.submit { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('b')") }
            release.signal()
            try await held.wait()
            try await first.wait()
            try await last.wait()
            await #expect(throws: DatabaseError.self) { try await failing.wait() }
            let after = committer.statistics
            // The holding write's transaction, then one for the three writes together.
            #expect(after.transactions - before.transactions == 2)
            #expect(after.writes - before.writes == 4)
            let rows = try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM item ORDER BY id") }
            #expect(rows == ["a", "b", "taken"])
            // The committer goes on: a later write commits.
            try await committer.write { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('c')") }
            #expect(try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM item") } == 4)
        }
    }

    @Test("a failing first and last write of a batch, and a batch of failures only, leave the others and the committer sound")
    func failuresAtTheEdges() async throws {
        try await Self.withCommitter { committer, pool in
            try await committer.write { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('taken')") }
            let (held, release) = Self.holdWriter(committer)
            let collide: GroupCommitter.Write = { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('taken')") }
            let edges = [committer.submit(collide), committer.submit { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('m')") }, committer.submit(collide)]
            release.signal()
            try await held.wait()
            await #expect(throws: DatabaseError.self) { try await edges[0].wait() }
            try await edges[1].wait()
            await #expect(throws: DatabaseError.self) { try await edges[2].wait() }

            let (held2, release2) = Self.holdWriter(committer)
            let failures = [committer.submit(collide), committer.submit(collide)]
            release2.signal()
            try await held2.wait()
            for failure in failures { await #expect(throws: DatabaseError.self) { try await failure.wait() } }
            try await committer.write { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('z')") }
            let rows = try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM item ORDER BY id") }
            #expect(rows == ["m", "taken", "z"])
        }
    }

    @Test("when the transaction ends under a batch (as SQLite ends it on some I/O and full-disk errors), every write of the batch fails and none is committed")
    func transactionEndedUnderTheBatch() async throws {
        try await Self.withCommitter { committer, pool in
            let (held, release) = Self.holdWriter(committer)
            let before = committer.submit { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('before')") }
            // What SQLite does by itself after some errors: the transaction is gone.
            let ending = committer.submit { db in try db.execute(sql: "ROLLBACK") }
            let after = committer.submit { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('after')") }
            release.signal()
            try await held.wait()
            for ticket in [before, ending, after] {
                await #expect(throws: (any Error).self) { try await ticket.wait() }
            }
            // A write told it failed must not be in the journal: a dispatch answered 内部错误
            // would otherwise run after the next restart.
            #expect(try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM item") } == [])
            try await committer.write { db in try db.execute(sql: "INSERT INTO item (id) VALUES ('later')") }
            #expect(try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM item") } == ["later"])
        }
    }
}
