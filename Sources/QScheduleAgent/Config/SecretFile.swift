import Foundation

/// Secrets hygiene for files holding secrets (`token_file`, `[cluster] password_file`): one
/// that group or others may read is a start-up warning, or an error with
/// `[agent] strict_permissions = true`.
enum SecretFile {
    /// Why the file at `path` exposes its secret, or `nil` when only its owner can read it.
    static func exposure(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 != 0 else { return nil }
        return "\"\(path)\" is readable or writable by group or others (mode \(String(format: "%04o", mode))): "
            + "chmod 600 it (strict_permissions = true refuses to start)"
    }
}

extension TableReader {
    /// Checks the secret file `path` named by `key`: a warning in `warnings` (file:line), or
    /// the error when `strict`.
    func checkSecret(_ key: String, path: String, strict: Bool, warnings: inout [String]) throws {
        guard let problem = SecretFile.exposure(path) else { return }
        let finding = error(key, problem)
        if strict { throw finding }
        warnings.append(finding.description)
    }
}
