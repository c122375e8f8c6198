import GRDB
import Synchronization

/// Group commit for the journal (DESIGN §4): writes that arrive while a commit is in flight
/// share the next transaction, so concurrent dispatches and task state changes pay for one
/// durable (`synchronous=FULL`) commit instead of one each.
///
/// Each write runs in its own savepoint inside the shared transaction, so one failing write
/// (a duplicate task id) fails alone; a failing commit fails every write of its batch. A
/// caller resumes only after the transaction holding its write has committed.
final class GroupCommitter: Sendable {
    typealias Write = @Sendable (Database) throws -> Void

    private struct Pending {
        let write: Write
        /// Told the outcome after the commit; `nil` for a write nobody waits for (see ``enqueue(_:)``).
        let completion: (@Sendable (Result<Void, any Error>) -> Void)?
    }

    private struct State {
        var pending: [Pending] = []
        var flushing = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    private let counts = Mutex<(transactions: Int, writes: Int)>((0, 0))

    /// Transactions committed and writes they carried, since start (diagnostics and tests).
    var statistics: (transactions: Int, writes: Int) { counts.withLock { $0 } }

    /// Told how long each transaction took to commit (the journal commit latency metric).
    private let committed: (@Sendable (Duration) -> Void)?

    init(pool: DatabasePool, committed: (@Sendable (Duration) -> Void)? = nil) {
        self.pool = pool
        self.committed = committed
    }

    /// Runs `write` in the next group transaction and returns once that transaction committed.
    func write(_ write: @escaping Write) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            append(Pending(write: write, completion: { continuation.resume(with: $0) }))
        }
    }

    /// Queues `write` for the next group transaction now, and returns a ticket that tells when
    /// it committed. Writes submitted together (in one actor turn) share a transaction.
    /// `committed` runs once the transaction holding the write committed, before the ticket
    /// says so.
    func submit(_ write: @escaping Write, committed: (@Sendable () -> Void)? = nil) -> CommitTicket {
        let ticket = CommitTicket()
        append(Pending(write: write, completion: { result in
            if case .success = result { committed?() }
            ticket.complete(result)
        }))
        return ticket
    }

    /// Queues `write` for the next group transaction without waiting for it. Writes commit in
    /// the order they were queued or written, so a later ``write(_:)`` that depends on this one
    /// commits in the same transaction or after it.
    func enqueue(_ write: @escaping Write) {
        append(Pending(write: write, completion: nil))
    }

    private func append(_ pending: Pending) {
        let startFlushing = state.withLock { state -> Bool in
            state.pending.append(pending)
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if startFlushing { flush() }
    }

    /// On GRDB's writer queue: commit batches until nothing is pending.
    private func flush() {
        pool.asyncWriteWithoutTransaction { db in
            while true {
                let batch = self.state.withLock { state -> [Pending] in
                    let batch = state.pending
                    state.pending = []
                    if batch.isEmpty { state.flushing = false }
                    return batch
                }
                guard !batch.isEmpty else { return }
                var results: [Result<Void, any Error>] = []
                results.reserveCapacity(batch.count)
                let began = ContinuousClock.now
                do {
                    try db.inTransaction(.immediate) {
                        let savepoint = try WriteSavepoint(db)
                        for pending in batch {
                            results.append(try savepoint.run(pending.write))
                        }
                        return .commit
                    }
                    self.counts.withLock { $0 = ($0.transactions + 1, $0.writes + batch.count) }
                    self.committed?(ContinuousClock.now - began)
                    for (pending, result) in zip(batch, results) { pending.completion?(result) }
                } catch {
                    for pending in batch { pending.completion?(.failure(error)) }
                }
            }
        }
    }
}

/// The savepoint each write of a batch runs in, so that a failing write is undone alone.
///
/// GRDB's `inSavepoint` would do, but it prepares its `SAVEPOINT` and `RELEASE` statements
/// anew for every write: under a no-op flood that was about 5 % of the agent's CPU. These are
/// prepared once per connection (GRDB's statement cache).
///
/// A write that throws is rolled back to its savepoint and fails alone. Anything that leaves
/// the transaction itself in doubt — a savepoint statement failing, or SQLite having ended the
/// transaction (it does on some I/O and full-disk errors) — throws out of the batch, so that
/// every write of the batch fails and none is committed by a later statement outside it
/// (`SAVEPOINT` outside a transaction would begin one).
private struct WriteSavepoint {
    let db: Database
    let begin: Statement
    let release: Statement
    let rollback: Statement

    init(_ db: Database) throws {
        self.db = db
        begin = try db.cachedStatement(sql: "SAVEPOINT journal_write")
        release = try db.cachedStatement(sql: "RELEASE SAVEPOINT journal_write")
        rollback = try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT journal_write")
    }

    /// Runs `write` in the savepoint: its result, or a throw when the batch must fail.
    func run(_ write: GroupCommitter.Write) throws -> Result<Void, any Error> {
        try requireTransaction()
        try begin.execute()
        do {
            try write(db)
        } catch {
            try requireTransaction()
            try rollback.execute()
            try release.execute()
            return .failure(error)
        }
        try requireTransaction()
        try release.execute()
        return .success(())
    }

    private func requireTransaction() throws {
        guard db.isInsideTransaction else { throw DatabaseError(resultCode: .SQLITE_ABORT, message: "the journal transaction was aborted") }
    }
}

/// The outcome of a write submitted to the journal, awaited later (see
/// ``GroupCommitter/submit(_:committed:)``): lets a caller queue a write at once and wait for
/// it elsewhere.
final class CommitTicket: Sendable {
    private struct State {
        var result: Result<Void, any Error>?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())

    func complete(_ result: Result<Void, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Returns once the write committed; throws what failed it.
    func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let done = state.withLock { state -> Result<Void, any Error>? in
                if state.result == nil { state.waiters.append(continuation) }
                return state.result
            }
            if let done { continuation.resume(with: done) }
        }
    }
}
