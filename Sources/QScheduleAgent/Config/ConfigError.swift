/// A configuration problem, naming the file, line and key so an operator can fix it.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    /// The full human-readable message, e.g. `agent.conf:12: [[job]] "export": timeout: must be ...`.
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
