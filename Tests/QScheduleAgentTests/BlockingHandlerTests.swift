import Foundation
import Synchronization
import Testing
@testable import QScheduleAgent

/// Handlers that block their thread run on the agent's `blocking_threads` pool: more of them
/// than the machine has cores (the cooperative pool's size) sleep in `sleep(2)` calls, and
/// meanwhile `/api/check` answers, dispatches are acknowledged and a cron job fires. What is
/// asserted is order (it happened while the sleepers had not finished), never speed.
@Suite("Blocking handlers")
struct BlockingHandlerTests {
    /// Counts calls that began and ended.
    final class Sleepers: Sendable {
        private let counts = Mutex((began: 0, ended: 0))
        func begin() { counts.withLock { $0.began += 1 } }
        func end() { counts.withLock { $0.ended += 1 } }
        var began: Int { counts.withLock { $0.began } }
        var ended: Int { counts.withLock { $0.ended } }
    }

    @Test("more blocking handlers than cores: /api/check, dispatch acknowledgements and cron fires go on while they block; a kill is recorded when the blocking call returns")
    func blockingDoesNotStall() async throws {
        let sleepers = Sleepers()
        let rounds = 6  // sleep(2) six times: 12 s blocked per task, far longer than what is asserted inside it
        var handlers = HandlerRegistry()
        handlers.register("b.block", blocking: { _ in
            sleepers.begin()
            for _ in 0..<rounds { sleep(2) }
            sleepers.end()
        })
        handlers.register("b.step") { context in
            // Blocking calls one at a time, checking cancellation between them.
            for _ in 0..<rounds { try await context.blocking { sleep(2) } }
        }
        handlers.register("b.quick") { _ in }
        handlers.register("b.tick") { _ in }
        let jobs = """
            [[job]]
            name = "b.block"
            overlap = "concurrent"
            max_concurrency = 8
            [[job]]
            name = "b.step"
            [[job]]
            name = "b.quick"
            [[job]]
            name = "b.tick"
            cron = "* * * * * ?"
            overlap = "concurrent"
            max_concurrency = 4

            """
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let blockers = max(4, cores * 2)
        try await InProcessAgent.with(jobs: jobs, agentExtra: "blocking_threads = \(blockers + 2)\nkill_grace = 5", handlers: handlers) { agent in
            for _ in 0..<blockers {
                #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"b.block"}"#).ret == true)
            }
            let step = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"b.step"}"#).message)
            #expect(await eventually { sleepers.began == blockers })
            let ticksBefore = try agent.agent.store.tasks(job: "b.tick").count

            // All of this while every sleeper is still blocked.
            let check = try await agent.call(.get, "/api/check/127.0.0.1.do", token: nil)
            #expect(check.data?.arrayValue?.compactMap { $0["name"]?.stringValue }.contains("b.block") == true, "\(check.text)")
            let quick = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"b.quick"}"#)
            #expect(quick.ret == true)
            let quickID = try #require(quick.message)
            #expect(try await eventually { try agent.agent.store.task(quickID)?.result == .succeeded })
            #expect(try await eventually { try agent.agent.store.tasks(job: "b.tick").count > ticksBefore })
            #expect(sleepers.ended == 0, "the sleepers ended before the agent answered: the test could not tell")

            // A kill reaches a blocking task when its current call returns: recorded killed (499).
            #expect(try await agent.call(.post, "/api2/tasks/kill.do", body: #"{"taskId":"\#(step)"}"#).ret == true)
            #expect(try await eventually { try agent.agent.store.task(step)?.status == .finished })
            let killed = try #require(try agent.agent.store.task(step))
            #expect(killed.result == .killed, "\(killed.result) \(killed.message)")
            #expect(try await eventually(seconds: 60) { sleepers.ended == blockers })
            #expect(try await eventually {
                try agent.agent.store.tasks(job: "b.block").allSatisfy { $0.status == .finished && $0.result == .succeeded }
            })
        }
    }

    @Test("a synchronous trailing closure is a plain closure handler: only register(name, blocking:) runs on the blocking_threads pool")
    func trailingClosureIsNotBlocking() async throws {
        let threads = Mutex<[String: String]>([:])
        @Sendable func record(_ job: String) {
            let thread = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
            threads.withLock { $0[job] = thread.trimmingCharacters(in: .newlines) }
        }
        var handlers = HandlerRegistry()
        handlers.register("t.trailing") { _ in record("t.trailing") }
        handlers.register("t.blocking", blocking: { _ in record("t.blocking") })
        let jobs = "[[job]]\nname = \"t.trailing\"\n[[job]]\nname = \"t.blocking\"\n"
        try await InProcessAgent.with(jobs: jobs, handlers: handlers) { agent in
            for job in ["t.trailing", "t.blocking"] {
                let id = try #require(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)"}"#).message)
                #expect(try await eventually { try agent.agent.store.task(id)?.result == .succeeded })
            }
        }
        // NIOThreadPool names its threads "TP-#<n>"; the cooperative pool's are Dispatch's.
        let names = threads.withLock { $0 }
        #expect(names["t.blocking"]?.hasPrefix("TP-#") == true, "\(names)")
        #expect(names["t.trailing"].map { !$0.hasPrefix("TP-#") } == true, "\(names)")
    }
}
