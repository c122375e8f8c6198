import Foundation
import QScheduleAgent
import QScheduleAgentExamples
import QScheduleAgentTesting
import Testing

/// The example handlers (`Examples/Handlers`), tested as a handler author would test theirs:
/// with `QScheduleAgentTesting`, no agent running.
@Suite("Example handlers, tested with QScheduleAgentTesting")
struct ExampleHandlerTests {
    /// A temporary file holding `text`, removed by the caller.
    private func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qagent-example-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("example.report: progress day by day; a missing region names the key; a timeout stops it part way")
    func report() async {
        let handler = ReportHandler(stepDuration: .milliseconds(20))
        let done = await HandlerTest(param: ["region": "eu", "days": 3]).run(handler)
        #expect(done.result == .succeeded)
        #expect(done.progress == HandlerTest.Progress(fraction: 1, message: "day 3 of 3"))
        #expect(done.log.first?.contains("info building report days=3 region=eu") == true, "\(done.log)")
        #expect(done.log.last?.hasSuffix("info report ready") == true, "\(done.log)")

        let bad = await HandlerTest(param: ["days": 3]).run(handler)
        #expect(bad.result == .failed && bad.message == #"param "region" is required"#, "\(bad.message)")

        let slow = await HandlerTest(param: ["region": "eu", "days": 1000], timeout: .milliseconds(300)).run(handler)
        #expect(slow.result == .timedOut)
        #expect((slow.progress?.fraction ?? 0) < 1)
    }

    @Test("example.greet: the greeting, times over; a mistyped param names the key")
    func greeting() async {
        let twice = await HandlerTest(param: ["name": "ops", "times": 2]).run(ClosureJobHandler(greet))
        #expect(twice.result == .succeeded && twice.log == ["hello, ops", "hello, ops"])
        let bad = await HandlerTest(param: ["times": "two"]).run(ClosureJobHandler(greet))
        #expect(bad.result == .failed && bad.message == #"param "times" must be an integer, got a string"#, "\(bad.message)")
    }

    @Test("example.lines: counts on the blocking pool; an unreadable file fails with what it says")
    func lines() async throws {
        let path = try file("one\ntwo\nthree\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let counted = await HandlerTest(param: ["path": .string(path)]).run(LineCountHandler())
        #expect(counted.result == .succeeded && counted.log == ["\(path): 3 lines"], "\(counted.log)")
        let missing = await HandlerTest(param: ["path": "/nonexistent/file"]).run(LineCountHandler())
        #expect(missing.result == .failed && missing.message == "cannot read /nonexistent/file", "\(missing.message)")
    }

    @Test("example.compress: completed by gzip's termination handler; gzip's failure fails the task; a kill terminates gzip")
    func compress() async throws {
        let path = try file(String(repeating: "qagent ", count: 10_000))
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + ".gz")
        }
        let compressed = await HandlerTest(param: ["path": .string(path)]).run(CompressHandler())
        #expect(compressed.result == .succeeded, "\(compressed.message)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path + ".gz")[.size] as? Int)
        #expect(size > 0 && size < 70_000)

        let missing = await HandlerTest(param: ["path": "/nonexistent/file"]).run(CompressHandler())
        #expect(missing.result == .failed && missing.message == "gzip exited with status 1", "\(missing.message)")
    }
}
