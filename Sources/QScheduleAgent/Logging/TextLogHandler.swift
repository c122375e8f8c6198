import Foundation
import Logging

/// A swift-log handler writing the lines of swift-log's `StreamLogHandler` byte for byte
/// (`2026-12-01T02:24:03+0000 info qagent: attempt=1 job=j task=7 [QScheduleAgent] task
/// started`: local time to the second, level, label, the metadata sorted by key, source,
/// message), at a fraction of its cost.
///
/// The agent writes three such lines per task, and under a no-op flood `StreamLogHandler`'s
/// formatting was the largest single cost after the kernel: it merges the metadata twice,
/// formats it through a lazy sort, a map of interpolations and a join, and allocates a
/// 255-byte buffer for `strftime` on every line. This handler merges once, appends straight
/// into one string, and formats the timestamp once per second. Its handler metadata is
/// kept aside and laid out only when a line is written (`StreamLogHandler` formats it on
/// every change, and the HTTP server sets a request id per request though nothing is logged).
///
/// `ObservabilityTests` compares its lines with `StreamLogHandler`'s for the same events.
struct TextLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: @Sendable (String) -> Void

    /// `sink` receives each line with its newline; the default writes it to stderr in one call.
    init(
        label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider,
        sink: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = ""
        line.reserveCapacity(192)
        line += LocalSecondTimestamp.now()
        line += " "
        line += event.level.rawValue
        if !label.isEmpty { line += " " }
        line += label
        line += ":"
        for (key, value) in effectiveMetadata(event).sorted(by: { $0.key < $1.key }) {
            line += " "
            line += key
            line += "="
            if case .string(let string) = value { line += string } else { line += value.description }
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        sink(line)
    }

    /// The handler's metadata, then the provider's, then the event's, then the error's two
    /// keys: `StreamLogHandler`'s order, each later one winning.
    private func effectiveMetadata(_ event: LogEvent) -> Logger.Metadata {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            if merged.isEmpty { merged = explicit } else { merged.merge(explicit) { _, explicit in explicit } }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return merged
    }
}

/// `strftime("%Y-%m-%dT%H:%M:%S%z")` of the local time, as `StreamLogHandler` writes it,
/// formatted once per second and shared by every line of that second.
enum LocalSecondTimestamp {
    private static let cache = PerSecondCache(format)

    static func now() -> String {
        cache.now()
    }

    static func format(_ second: Int) -> String {
        var second = time_t(second)
        var local = tm()
        tzset()  // as `localtime`, which `StreamLogHandler` calls: a changed TZ is seen
        guard localtime_r(&second, &local) != nil else { return "<unknown>" }
        return local.formatted("%Y-%m-%dT%H:%M:%S%z")
    }
}
