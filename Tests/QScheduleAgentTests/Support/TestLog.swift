import Foundation
import Logging

/// The logger of in-process agents and fakes. Quiet by default: the errors that fault tests
/// provoke on purpose must not read as failures in CI output. `QAGENT_TEST_LOG=debug` (or
/// any swift-log level) shows them while debugging a test.
func testLogger(_ label: String = "test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = testLogLevel
    return logger
}

let testLogLevel: Logger.Level = {
    guard let name = ProcessInfo.processInfo.environment["QAGENT_TEST_LOG"], let level = Logger.Level(rawValue: name) else { return .critical }
    return level
}()

/// A task log's output without the closing line every task log ends with (`[qagent] task ...`);
/// `nil` when that closing line is missing, so a comparison with the expected output fails.
func taskOutput(_ log: String?) -> String? {
    guard let log, log.hasSuffix("\n") else { return nil }
    let body = log.dropLast()
    let start = body.lastIndex(of: "\n").map { body.index(after: $0) } ?? body.startIndex
    guard body[start...].hasPrefix("[qagent] task ") else { return nil }
    return String(body[..<start])
}

/// The closing line of a task log, or `nil`.
func closingLine(_ log: String?) -> String? {
    guard let log, let output = taskOutput(log) else { return nil }
    return String(log.dropFirst(output.count).dropLast())
}
