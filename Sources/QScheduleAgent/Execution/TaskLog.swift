import Foundation
import Glibc
import Synchronization

/// A task's log file under `data_dir/logs`, capped at `max_log_bytes`.
///
/// Command output is read from the child's pipe and appended here; Swift handlers write
/// lines through ``write(_:)`` or their ``TaskContext/logger``. Past the cap, one marker
/// line says so and the rest is discarded (still read from the child, so it never blocks).
/// The file is created on the first write; every task's log ends with a closing line
/// (``close(closingLine:createIfEmpty:)``) saying how the task ended, written even past the
/// cap. A task that succeeded without writing anything gets no file: its log (the closing
/// line alone) is told from its journal record (``TaskRunner/closingLine(result:message:durationMs:)``),
/// which spares a file creation per task, the costliest step of a no-op task.
public final class TaskLog: Sendable {
    private struct State {
        var handle: FileHandle?
        var closed = false
        var written: Int = 0
        var truncated = false
        /// Whether the last byte written was a newline (the closing line starts a line).
        var endsWithNewline = true
    }

    /// The log file's path.
    public let path: String
    /// The most bytes of output kept, not counting the truncation marker.
    public let maxBytes: Int
    private let state: Mutex<State>

    /// Whether this log continues an existing file (a retry) instead of replacing it.
    let appends: Bool

    /// A log at `path`; the file is created (truncating) on the first write, or with `append`
    /// continued (its bytes count against the cap).
    package init(path: String, maxBytes: Int, append: Bool = false) {
        self.path = path
        self.maxBytes = maxBytes
        appends = append
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
            guard !state.closed, !state.truncated, let handle = open(&state) else { return }
            let room = maxBytes - state.written
            if data.count <= room {
                try? handle.write(contentsOf: data)
                state.written += data.count
                if let last = data.last { state.endsWithNewline = last == UInt8(ascii: "\n") }
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

    /// The file, created on first use; `nil` when it cannot be written (the output is then
    /// dropped rather than failing the task).
    private func open(_ state: inout State) -> FileHandle? {
        if state.handle == nil, appends, let handle = FileHandle(forWritingAtPath: path), let end = try? handle.seekToEnd() {
            state.handle = handle
            state.written = Int(end)
            state.truncated = state.written >= maxBytes
        }
        if state.handle == nil {
            // One open(2): FileManager.createFile writes a temporary file and renames it (two
            // inodes and a rename per task), which showed in the no-op task profile.
            let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                state.closed = true
                return nil
            }
            state.handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        }
        return state.handle
    }

    /// Closes the file; later writes are dropped. `closingLine` (how the task ended) is
    /// appended first, past the cap if need be, on a line of its own; when nothing was
    /// written and `createIfEmpty` is false, no file is created for it.
    package func close(closingLine: String? = nil, createIfEmpty: Bool = true) {
        state.withLock { state in
            if let closingLine, !state.closed, state.handle != nil || createIfEmpty || appends, let handle = open(&state) {
                let separator = state.written > 0 && !state.truncated && !state.endsWithNewline ? "\n" : ""
                try? handle.write(contentsOf: Data((separator + closingLine + "\n").utf8))
            }
            try? state.handle?.close()
            state.handle = nil
            state.closed = true
        }
    }
}
