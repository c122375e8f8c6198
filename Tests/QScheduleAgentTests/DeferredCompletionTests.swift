import Foundation
import Synchronization
import QScheduleAgent
import QScheduleAgentTesting
import Testing

/// `context.deferCompletion()`: a handler returns and its task ends later, through the handle.
@Suite("Deferred completion")
struct DeferredCompletionTests {
    enum UploadError: Error, CustomStringConvertible {
        case rejected(String)
        var description: String {
            switch self {
            case .rejected(let why): "upload rejected: \(why)"
            }
        }
    }

    /// A handler that defers and hands its completion to `later`, which runs after it returned.
    private func deferring(_ later: @escaping @Sendable (TaskCompletionHandle) async -> Void) -> ClosureJobHandler {
        ClosureJobHandler { context in
            let completion = context.deferCompletion()
            Task {
                await later(completion)
            }
        }
    }

    @Test("completed later: 200; failed later: 500 with the error's description; only the first call counts")
    func completesLater() async {
        let returns = Returns()
        let done = await HandlerTest().run(deferring { completion in
            try? await Task.sleep(for: .milliseconds(200))
            returns.record(completion.complete())
            returns.record(completion.fail(UploadError.rejected("too late")))
        })
        #expect(done.result == .succeeded && done.message == "ok")
        #expect(returns.values == [true, false])

        let failed = await HandlerTest().run(deferring { completion in
            try? await Task.sleep(for: .milliseconds(100))
            completion.fail(UploadError.rejected("quota"))
        })
        #expect(failed.result == .failed && failed.message == "upload rejected: quota")
    }

    @Test("completed before the handler returned: the result stands")
    func completedEarly() async {
        let outcome = await HandlerTest().run(ClosureJobHandler { context in
            let completion = context.deferCompletion()
            completion.fail(UploadError.rejected("at once"))
        })
        #expect(outcome.result == .failed && outcome.message == "upload rejected: at once")
    }

    @Test("still pending at the timeout or a kill: 504 / 499, the stop handlers run, later calls return false")
    func stoppedWhilePending() async throws {
        for (test, expected) in [(HandlerTest(timeout: .milliseconds(200)), TaskResult.timedOut), (HandlerTest(), .killed)] {
            let returns = Returns()
            let handler = deferring { completion in
                completion.whenStopped { returns.record(true) }
                while !completion.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
                returns.record(completion.complete())
            }
            let outcome = await test.run(handler, killAfter: expected == .killed ? .milliseconds(200) : nil)
            #expect(outcome.result == expected, "\(outcome.message)")
            #expect(try await eventually(seconds: 5) { returns.values == [true, false] }, "\(returns.values)")
        }
    }

    @Test("a handler that throws after deferring fails with its error, and the handle is refused")
    func throwsAfterDeferring() async throws {
        let returns = Returns()
        let outcome = await HandlerTest().run(ClosureJobHandler { context in
            let completion = context.deferCompletion()
            Task {
                try? await Task.sleep(for: .milliseconds(100))
                returns.record(completion.complete())
            }
            throw UploadError.rejected("before starting")
        })
        #expect(outcome.result == .failed && outcome.message == "upload rejected: before starting")
        #expect(try await eventually(seconds: 5) { returns.values == [false] })
    }
}

/// Values recorded from other tasks.
final class Returns: Sendable {
    private let recorded = Mutex<[Bool]>([])
    func record(_ value: Bool) { recorded.withLock { $0.append(value) } }
    var values: [Bool] { recorded.withLock { $0 } }
}
