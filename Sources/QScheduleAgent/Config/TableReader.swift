import Foundation
import TOMLKit

/// Typed, key-checked access to one TOML table, producing errors that name file, line and key.
struct TableReader {
    let table: TOMLTable
    let tableName: String
    var index: Int = 0
    let label: String
    let fileName: String
    let locator: TOMLKeyLocator

    init(table: TOMLTable, tableName: String, index: Int = 0, label: String, fileName: String, locator: TOMLKeyLocator) {
        self.table = table
        self.tableName = tableName
        self.index = index
        self.label = label
        self.fileName = fileName
        self.locator = locator
    }

    func error(_ key: String, _ problem: String) -> ConfigError {
        let line = locator.line(table: tableName, index: index, key: key).map { ":\($0)" } ?? ""
        return ConfigError("\(fileName)\(line): \(label) \(key): \(problem)")
    }

    func rejectUnknownKeys(allowed: Set<String>) throws {
        for key in TOMLDocument.keys(of: table).sorted() where !allowed.contains(key) {
            throw error(key, "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func table(_ key: String) throws -> TOMLTable? {
        guard let value = table[key] else { return nil }
        guard let nested = value.table else { throw error(key, "must be a table ([\(key)])") }
        return nested
    }

    func string(_ key: String) throws -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.stringValue else { throw error(key, "must be a string") }
        return string
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw error(key, "must be true or false") }
        return bool
    }

    func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let value = table[key] else { return nil }
        guard value.type == .int, let int = value.int else { throw error(key, "must be an integer") }
        guard range.contains(int) else {
            let upper = range.upperBound == Int.max ? "" : " and <= \(range.upperBound)"
            throw error(key, "must be >= \(range.lowerBound)\(upper), got \(int)")
        }
        return int
    }

    /// The required `url` key: an absolute http(s) URL.
    func url() throws -> URL {
        guard let text = try string("url") else { throw error("url", "is required") }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw error("url", "must be an http:// or https:// URL, got \"\(text)\"")
        }
        return url
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, _: Choice.Type) throws -> Choice? where Choice.RawValue == String {
        guard let text = try string(key) else { return nil }
        guard let value = Choice(rawValue: text) else {
            throw error(key, "must be one of \(Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(text)\"")
        }
        return value
    }
}
