import Foundation
import Logging

/// How `qagent run` writes its log (`--log-format`, `[agent] log_format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's `StreamLogHandler` lines, for a terminal (through ``TextLogHandler``).
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

/// swift-log's `StreamLogHandler`, with its metadata kept aside and given to it only when a
/// line is written. `StreamLogHandler` formats its whole metadata on every change, and the
/// HTTP server sets a request id on its logger for every request: that formatting showed in
/// the `/api/check` profile though nothing was logged.
struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level) {
        stream = StreamLogHandler.standardError(label: label)
        stream.logLevel = level
    }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        }
        stream.log(event: event)
    }
}
