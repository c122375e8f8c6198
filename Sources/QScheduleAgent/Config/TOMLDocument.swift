import CQAgentShims
import CTOML
import Foundation
import TOMLKit

/// A parsed `agent.conf`, freed when it is no longer read.
///
/// TOMLKit 0.6.0 never frees what it parses: `TOMLTable` has no `deinit`, so every document's
/// C++ tree leaked (8 MB for 10,000 jobs, on every start, reload and `config check`), and
/// every read of a string or of a table's keys leaked a C copy of it. This holds the root
/// table, hands out strings and keys without the leak, and deletes the tree in ``free()``,
/// called explicitly in a `defer` of the scope that reads the document (never from `deinit`:
/// the optimizer may end an object's life at its last use, while sub-tables read from it are
/// still in use). The tree's pointer is TOMLKit's internal stored property `tablePointer`,
/// read by reflection; should a TOMLKit version rename it, nothing is freed (the old leak,
/// not a crash), and `ConfigLoaderTests` says so.
final class TOMLDocument {
    /// The document's root table; its values and sub-tables are valid until ``free()``.
    let root: TOMLTable
    private var freed = false

    /// Parses `text` (throws TOMLKit's `TOMLParseError`).
    init(parsing text: String) throws {
        root = try TOMLTable(string: text)
    }

    /// Deletes the document's tree. Nothing read from ``root`` may be used afterwards;
    /// everything the loader keeps is a Swift copy.
    func free() {
        guard !freed, let pointer = Self.pointer(of: root) else { return }
        freed = true
        qagent_toml_node_delete(UnsafeMutableRawPointer(pointer))
    }

    /// Whether TOMLKit's table pointer can be read here (the tree can be freed).
    static var canFree: Bool {
        (try? TOMLDocument(parsing: "a = 1")).map { pointer(of: $0.root) != nil } ?? false
    }

    /// `table.keys`, without leaking the C strings TOMLKit copies them into.
    static func keys(of table: TOMLTable) -> [String] {
        guard let pointer = pointer(of: table) else { return table.keys }
        let count = tableSize(pointer)
        let cKeys = tableGetKeys(pointer)
        defer {
            for index in 0..<count { Foundation.free(UnsafeMutableRawPointer(mutating: cKeys[index])) }
            Foundation.free(UnsafeMutableRawPointer(mutating: cKeys))
        }
        return (0..<count).map { String(cString: cKeys[$0]) }
    }

    /// `value.string`, without leaking the C string TOMLKit copies it into.
    static func string(_ value: any TOMLValueConvertible) -> String? {
        let node = value.tomlValue
        guard node.type == .string else { return nil }
        guard let pointer = Mirror(reflecting: node).children.first(where: { $0.label == "tomlValuePointer" })?.value as? OpaquePointer,
              let cString = nodeAsString(pointer)
        else { return value.string }
        defer { Foundation.free(UnsafeMutableRawPointer(mutating: cString)) }
        return String(cString: cString)
    }

    private static func pointer(of table: TOMLTable) -> OpaquePointer? {
        Mirror(reflecting: table).children.first { $0.label == "tablePointer" }?.value as? OpaquePointer
    }
}

extension TOMLValueConvertible {
    /// The string value (`nil` for another type), read without TOMLKit's leak
    /// (``TOMLDocument/string(_:)``).
    var stringValue: String? { TOMLDocument.string(self) }
}
