import Foundation
import Synchronization

/// A task's log file under `data_dir/logs`, capped at `max_log_bytes`.
///
/// Command output is read from the child's pipe and appended here; Swift handlers write
/// lines through ``write(_:)`` or their ``TaskContext/logger``. Past the cap, one marker
/// line says so and the rest is discarded (still read from the child, so it never blocks).
/// The file is created on the first write: a task that prints nothing leaves no file.
public final class TaskLog: Sendable {
    private struct State {
        var handle: FileHandle?
        var closed = false
        var written: Int = 0
        var truncated = false
    }

    /// The log file's path.
    public let path: String
    /// The most bytes of output kept, not counting the truncation marker.
    public let maxBytes: Int
    private let state: Mutex<State>

    /// A log at `path`; the file is created (truncating) on the first write.
    init(path: String, maxBytes: Int) {
        self.path = path
        self.maxBytes = maxBytes
        state = Mutex(State())
    }

    /// The marker written once when output passes the cap.
    static func truncationMarker(_ maxBytes: Int) -> String {
        "\n[qagent: log truncated at \(maxBytes) bytes; further output discarded]\n"
    }

    /// Appends one line (a newline is added).
    public func write(_ line: String) {
        append(Data((line + "\n").utf8))
    }

    /// Appends raw bytes, as they came (invalid UTF-8 included), up to the cap.
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        append(Data(bytes))
    }

    func append(_ data: Data) {
        state.withLock { state in
            guard !state.closed, !state.truncated else { return }
            if state.handle == nil {
                guard FileManager.default.createFile(atPath: path, contents: nil),
                      let handle = FileHandle(forWritingAtPath: path) else {
                    state.closed = true  // unwritable: drop the output rather than fail the task
                    return
                }
                state.handle = handle
            }
            guard let handle = state.handle else { return }
            let room = maxBytes - state.written
            if data.count <= room {
                try? handle.write(contentsOf: data)
                state.written += data.count
            } else {
                if room > 0 { try? handle.write(contentsOf: data.prefix(room)) }
                try? handle.write(contentsOf: Data(Self.truncationMarker(maxBytes).utf8))
                state.written = maxBytes
                state.truncated = true
            }
        }
    }

    /// Whether output passed the cap.
    public var isTruncated: Bool { state.withLock { $0.truncated } }

    /// Closes the file; later writes are dropped.
    func close() {
        state.withLock { state in
            try? state.handle?.close()
            state.handle = nil
            state.closed = true
        }
    }
}
