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
        /// Resumed after the commit; `nil` for a write nobody waits for (see ``enqueue(_:)``).
        let continuation: CheckedContinuation<Void, any Error>?
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

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Runs `write` in the next group transaction and returns once that transaction committed.
    func write(_ write: @escaping Write) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            append(Pending(write: write, continuation: continuation))
        }
    }

    /// Queues `write` for the next group transaction without waiting for it. Writes commit in
    /// the order they were queued or written, so a later ``write(_:)`` that depends on this one
    /// commits in the same transaction or after it.
    func enqueue(_ write: @escaping Write) {
        append(Pending(write: write, continuation: nil))
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
                do {
                    try db.inTransaction(.immediate) {
                        for pending in batch {
                            do {
                                try db.inSavepoint {
                                    try pending.write(db)
                                    return .commit
                                }
                                results.append(.success(()))
                            } catch {
                                results.append(.failure(error))
                            }
                        }
                        return .commit
                    }
                    self.counts.withLock { $0 = ($0.transactions + 1, $0.writes + batch.count) }
                    for (pending, result) in zip(batch, results) { pending.continuation?.resume(with: result) }
                } catch {
                    for pending in batch { pending.continuation?.resume(throwing: error) }
                }
            }
        }
    }
}
