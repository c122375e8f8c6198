import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on `data_dir` (`flock` on `data_dir/qagent.lock`), held for the life of
/// the agent: a second agent on the same folder is refused at start instead of corrupting
/// the journal. The kernel drops the lock when the process dies, even on `kill -9`.
final class DataDirectoryLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock; throws ``ConfigError`` naming the holder's pid when it is taken.
    init(dataDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let path = dataDirectory + "/qagent.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ConfigError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw ConfigError("data_dir \"\(dataDirectory)\" is in use by another qagent (pid \(holder.isEmpty ? "?" : holder))")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
