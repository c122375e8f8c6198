// A development build. scripts/release.sh replaces this file for a release build (with the
// commit and date) and restores it afterwards: keep it as it is in git.
enum BuildInfo {
    static let commit = "dev"
    static let date = "unknown"
}
