/// Finds the line on which a key of `agent.conf` is written.
///
/// TOMLKit does not expose source positions of values, so the loader asks this scanner to
/// name the line in its errors. It understands table headers (`[agent]`, `[[job]]`) and
/// `key = value` lines, which is all `agent.conf` uses.
struct TOMLKeyLocator {
    /// A table occurrence: its header name, which `[[name]]` occurrence, and its key lines.
    private struct Section {
        var name: String
        var index: Int
        var headerLine: Int
        var keys: [String: Int] = [:]
    }

    private var sections: [Section] = []

    init(text: String) {
        var current = Section(name: "", index: 0, headerLine: 1)
        var arrayCounts: [String: Int] = [:]
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.drop(while: { $0 == " " || $0 == "\t" })
            let lineNumber = offset + 1
            if line.hasPrefix("[[") {
                sections.append(current)
                let name = Self.headerName(line.dropFirst(2), closing: "]]")
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                current = Section(name: name, index: index, headerLine: lineNumber)
            } else if line.hasPrefix("[") {
                sections.append(current)
                current = Section(name: Self.headerName(line.dropFirst(), closing: "]"), index: 0, headerLine: lineNumber)
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                var key = line[..<equals].trimmingWhitespace()
                if key.count >= 2, key.first == "\"", key.last == "\"" { key = key.dropFirst().dropLast() }
                if current.keys[String(key)] == nil { current.keys[String(key)] = lineNumber }
            }
        }
        sections.append(current)
    }

    /// The line of `key` in the `index`-th occurrence of table `table` (`""` = top level),
    /// or the table's header line when the key is not written there.
    func line(table: String, index: Int = 0, key: String?) -> Int? {
        guard let section = sections.first(where: { $0.name == table && $0.index == index }) else { return nil }
        if let key, let line = section.keys[key] { return line }
        if let key, let nested = sections.first(where: { $0.name == (table.isEmpty ? key : "\(table).\(key)") }) {
            return nested.headerLine
        }
        return section.headerLine
    }

    private static func headerName(_ rest: Substring, closing: String) -> String {
        let end = rest.range(of: closing)?.lowerBound ?? rest.endIndex
        return String(rest[..<end].trimmingWhitespace())
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" || first == "\r" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" || last == "\r" { result = result.dropLast() }
        return result
    }
}
