import Foundation
import Synchronization

/// A task's log file under `data_dir/logs`: command output goes straight into it, and Swift
/// handlers write lines through ``write(_:)``.
public final class TaskLog: Sendable {
    /// The log file's path.
    public let path: String
    private let handle: Mutex<FileHandle?>

    /// Creates (truncating) the log file at `path`.
    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        handle = Mutex(try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
    }

    /// Appends one line (a newline is added).
    public func write(_ line: String) {
        handle.withLock { handle in
            guard let handle else { return }
            _ = try? handle.seekToEnd()
            try? handle.write(contentsOf: Data((line + "\n").utf8))
        }
    }

    /// The raw descriptor, for giving to a child process as stdout/stderr.
    var fileDescriptor: Int32? {
        handle.withLock { $0?.fileDescriptor }
    }

    /// Closes the file; later writes are dropped.
    func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }
}
