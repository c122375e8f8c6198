/// The version of this qagent build, reported by `/api2/agent/status.do` and `--version`.
public enum AgentVersion {
    public static let current = "0.1.0"
}
