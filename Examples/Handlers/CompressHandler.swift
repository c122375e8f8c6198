import Foundation
import QScheduleAgent

/// Completing later: starts `gzip` on a file and returns at once; the task stays running
/// until gzip's termination handler completes or fails it. A kill or timeout stops gzip.
public struct CompressHandler: TypedJobHandler {
    public struct Param: Decodable, Sendable {
        public var path: String
    }

    public enum Failure: Error, CustomStringConvertible {
        case gzipExited(status: Int32)

        public var description: String {
            switch self {
            case .gzipExited(let status): "gzip exited with status \(status)"
            }
        }
    }

    public init() {}

    public func run(_ param: Param, context: TaskContext) async throws {
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["--keep", "--force", param.path]
        let completion = context.deferCompletion()
        gzip.terminationHandler = { gzip in
            if gzip.terminationStatus == 0 {
                completion.complete()
            } else {
                completion.fail(Failure.gzipExited(status: gzip.terminationStatus))
            }
        }
        try gzip.run()
        completion.whenStopped {
            // SIGKILL, not terminate(): on Linux a Foundation Process inherits the blocked
            // signals of the thread that started it (swift-corelibs-foundation#4772), SIGTERM
            // among them. gzip then leaves its partial output.
            kill(gzip.processIdentifier, SIGKILL)
            try? FileManager.default.removeItem(atPath: param.path + ".gz")
        }
        context.logger.info("compressing", metadata: ["path": "\(param.path)", "pid": "\(gzip.processIdentifier)"])
    }
}
