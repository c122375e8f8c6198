/// The version of this qagent build, reported by `/api2/agent/status.do` and `--version`.
public enum AgentVersion {
    public static let current = "0.1.0"
    /// The git commit and UTC date of a release build (`scripts/release.sh` writes
    /// `BuildInfo.swift` for the build, then restores it); `dev` otherwise.
    public static let commit = BuildInfo.commit
    public static let buildDate = BuildInfo.date

    /// `qagent --version`: `0.1.0 (commit 1a2b3c4d5e6f, built 2026-11-30T17:00:00Z)`.
    public static var description: String {
        "\(current) (commit \(commit), built \(buildDate))"
    }
}
