import Foundation

/// Rows printed as aligned columns (`qagent jobs list`, `qagent tasks list`): each column as
/// wide as its widest cell, two spaces apart, the last one unpadded.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    var text: String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Epoch ms as local `yyyy-MM-dd HH:mm:ss`; `-` for 0 or none.
    static func time(_ ms: Int64?) -> String {
        guard let ms, ms > 0 else { return "-" }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
