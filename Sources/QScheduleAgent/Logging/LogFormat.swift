import Foundation
import Logging

/// How `qagent run` writes its log (`--log-format`, `[agent] log_format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// The lines of swift-log's `StreamLogHandler`, for a terminal (written by ``TextLogHandler``).
    case text
    /// One JSON object per line (``JSONLogHandler``), for journald and log shippers.
    case json

    /// Installs the process-wide log handler writing to stderr at `level`. Once per process
    /// (swift-log's rule), before the first logger is made.
    public func bootstrap(level: Logger.Level) {
        switch self {
        case .text:
            LoggingSystem.bootstrap { label in TextLogHandler(label: label, level: level) }
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
