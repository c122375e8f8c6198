import Foundation
import Logging

/// A swift-log handler writing one JSON object per line (JSON Lines), as journald and log
/// shippers expect. Keys are stable: `ts` (RFC 3339, UTC, milliseconds), `level`, `msg`,
/// `logger` (the label), then the metadata's keys (`task`, `job`, `attempt`, `state`,
/// `duration_ms`, ...) — a metadata key never replaces one of the first four. Values are
/// strings, except integers, finite doubles and booleans given as `.stringConvertible`
/// (JSON numbers and booleans) and nested dictionaries or arrays (JSON objects and arrays).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: @Sendable (String) -> Void

    /// `sink` receives each line with its newline; the default writes it to stderr in one call
    /// (lines from concurrent tasks never interleave).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        var line = "{\"ts\":"
        Self.append(string: UTCMillisecondTimestamp.now(), to: &line)
        line += ",\"level\":"
        Self.append(string: event.level.rawValue, to: &line)
        line += ",\"msg\":"
        Self.append(string: event.message.description, to: &line)
        line += ",\"logger\":"
        Self.append(string: label, to: &line)
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) where !Self.isReserved(key) {
            line += ","
            Self.append(string: key, to: &line)
            line += ":"
            Self.append(value: value, to: &line)
        }
        line += "}\n"
        sink(line)
    }

    /// The four keys every line starts with, which no metadata key replaces.
    private static func isReserved(_ key: String) -> Bool {
        key == "ts" || key == "level" || key == "msg" || key == "logger"
    }

    /// Writes to stderr with one `write(2)` per line.
    public static let standardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }

    private static func append(value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let string): append(string: string, to: &line)
        // The agent's own integers first: a cast to a concrete type is much cheaper than one
        // to `any BinaryInteger`.
        case .stringConvertible(let number as Int): line += String(number)
        case .stringConvertible(let number as Int64): line += String(number)
        case .stringConvertible(let number as Int32): line += String(number)
        case .stringConvertible(let number as any BinaryInteger): line += "\(number)"
        case .stringConvertible(let number as Double) where number.isFinite: line += "\(number)"
        case .stringConvertible(let flag as Bool): line += flag ? "true" : "false"
        case .stringConvertible(let convertible): append(string: convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(value: element, to: &line)
            }
            line += "]"
        case .dictionary(let members):
            line += "{"
            for (index, (key, element)) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line += "," }
                append(string: key, to: &line)
                line += ":"
                append(value: element, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
    static func append(string: String, to line: inout String) {
        line += "\""
        if !string.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            line += string
            line += "\""
            return
        }
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                line += "\\u00" + String(scalar.value >> 4, radix: 16) + String(scalar.value & 0xF, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}

/// The time as `Date.ISO8601FormatStyle(includingFractionalSeconds: true)` writes it (UTC,
/// milliseconds truncated: `2026-12-01T02:24:03.123Z`), with everything up to the seconds
/// formatted once per second and shared by every line of that second.
enum UTCMillisecondTimestamp {
    private static let prefixes = PerSecondCache(prefix)

    static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return format(second: now.tv_sec, millisecond: now.tv_nsec / 1_000_000)
    }

    static func format(second: Int, millisecond: Int) -> String {
        var text = prefixes.value(at: second)
        if millisecond < 100 { text += millisecond < 10 ? "00" : "0" }
        text += String(millisecond)
        text += "Z"
        return text
    }

    /// `YYYY-MM-DDTHH:MM:SS.` of `second` since the epoch, in UTC.
    private static func prefix(_ second: Int) -> String {
        var second = time_t(second)
        var utc = tm()
        guard gmtime_r(&second, &utc) != nil else { return "1970-01-01T00:00:00." }
        return utc.formatted("%Y-%m-%dT%H:%M:%S.")
    }
}
