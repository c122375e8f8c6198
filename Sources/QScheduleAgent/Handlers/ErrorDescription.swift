import Foundation

/// How an error thrown by a Swift handler is recorded — the task's `message` (task info, the
/// report), the closing line of its log and the agent's log line: `LocalizedError`'s
/// `errorDescription`; else a `CustomStringConvertible` description; else the error's type and
/// value, module-qualified (`Exports.ExportError.tableMissing("orders")`), never a bare case
/// name such as `tableMissing("orders")`.
package enum ErrorDescription {
    package static func of(_ error: any Error) -> String {
        if let localized = error as? any LocalizedError, let text = localized.errorDescription { return text }
        if let described = (error as Any) as? any CustomStringConvertible { return described.description }
        let value = String(describing: error)
        let qualified = readable(String(reflecting: type(of: error)))
        if Mirror(reflecting: error).displayStyle == .enum { return "\(qualified).\(value)" }
        // A struct or class prints as `Name(field: ...)`: qualify the name.
        let simple = String(describing: type(of: error))
        return value.hasPrefix(simple) ? qualified + value.dropFirst(simple.count) : "\(qualified): \(value)"
    }

    /// `String(reflecting:)` of a type, without the `(unknown context at $…)` of a type
    /// declared inside a function.
    private static func readable(_ name: String) -> String {
        name.replacingOccurrences(of: #"\(unknown context at \$[0-9a-f]+\)\."#, with: "", options: .regularExpression)
    }
}
