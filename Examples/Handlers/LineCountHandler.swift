import Foundation
import QScheduleAgent

/// Blocking work: reads a file with synchronous I/O on the agent's `blocking_threads`, never
/// on the cooperative pool that serves requests and fires crons.
public struct LineCountHandler: TypedJobHandler {
    public struct Param: Decodable, Sendable {
        public var path: String
    }

    public enum Failure: Error, CustomStringConvertible {
        case unreadable(path: String)

        public var description: String {
            switch self {
            case .unreadable(let path): "cannot read \(path)"
            }
        }
    }

    public init() {}

    public func run(_ param: Param, context: TaskContext) async throws {
        let lines = try await context.blocking {
            guard let file = FileHandle(forReadingAtPath: param.path) else { throw Failure.unreadable(path: param.path) }
            defer { try? file.close() }
            var count = 0
            while let chunk = try file.read(upToCount: 1 << 16), !chunk.isEmpty {
                count += chunk.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            }
            return count
        }
        context.log.write("\(param.path): \(lines) lines")
    }
}
