import Foundation
import QScheduleAgent
import QScheduleAgentTesting
import Testing

/// `QScheduleAgentTesting`: a handler run without an agent, read back as the agent would
/// record it.
@Suite("Handler testing library")
struct HandlerTestingTests {
    struct Export: TypedJobHandler {
        struct Param: Decodable, Sendable {
            var table: String
            var rows: Int
        }

        func run(_ param: Param, context: TaskContext) async throws {
            context.logger.info("exporting", metadata: ["table": "\(param.table)"])
            for row in 1...param.rows {
                try context.checkCancellation()
                try await Task.sleep(for: .milliseconds(10))
                context.progress(Double(row) / Double(param.rows), "row \(row)")
            }
            context.log.write("exported \(param.rows) rows")
        }
    }

    enum ExportError: Error {
        case tableLocked(String)
    }

    @Test("success: log lines and the last progress, as the task log and task info would show them")
    func succeeds() async {
        let outcome = await HandlerTest(param: .object(["table": .string("orders"), "rows": .int(3)])).run(Export())
        #expect(outcome.result == .succeeded && outcome.message == "ok")
        #expect(outcome.log.count == 2 && outcome.log[0].contains("info exporting table=orders"), "\(outcome.log)")
        #expect(outcome.log.last == "exported 3 rows")
        #expect(outcome.progress == HandlerTest.Progress(fraction: 1, message: "row 3"))
    }

    @Test("failures: a bad param names the key; a thrown error is recorded by what it says")
    func fails() async {
        let bad = await HandlerTest(param: .object(["table": .string("orders"), "rows": .string("many")])).run(Export())
        #expect(bad.result == .failed && bad.message.hasPrefix(#"param "rows" must be"#), "\(bad.message)")
        let thrown = await HandlerTest().run(ClosureJobHandler { _ in throw ExportError.tableLocked("orders") })
        #expect(thrown.result == .failed)
        #expect(thrown.message == #"QScheduleAgentTests.HandlerTestingTests.ExportError.tableLocked("orders")"#, "\(thrown.message)")
    }

    @Test("a timeout and a kill cancel the handler and are recorded as such; blocking work runs and is cancelled on return")
    func stops() async {
        let timedOut = await HandlerTest(param: .object(["table": .string("orders"), "rows": .int(10_000)]), timeout: .milliseconds(200)).run(Export())
        #expect(timedOut.result == .timedOut, "\(timedOut.message)")
        #expect((timedOut.progress?.fraction ?? 1) < 1, "it stopped part way")
        let killed = await HandlerTest(param: .object(["table": .string("orders"), "rows": .int(10_000)])).run(Export(), killAfter: .milliseconds(200))
        #expect(killed.result == .killed && killed.message == "killed")
        let blocking = await HandlerTest().run(ClosureJobHandler { context in
            let value = try await context.blocking { () -> Int in
                usleep(300_000)
                return 42
            }
            context.log.write("got \(value)")
        }, killAfter: .milliseconds(100))
        #expect(blocking.result == .killed && blocking.log.isEmpty, "the blocking call returned, then the kill was seen: \(blocking.log)")
    }
}
