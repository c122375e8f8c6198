import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs a command handler (`command = [...]` in `agent.conf`) as a child process.
///
/// The child gets its own session and process group, the param as JSON on stdin and in
/// `QSCHEDULE_PARAM`, and its stdout+stderr in the task's log file. When the surrounding
/// Swift task is cancelled (timeout, kill, shutdown) the whole group gets SIGTERM, then
/// SIGKILL after `killGrace`.
struct CommandRunner: Sendable {
    /// Params larger than this reach the child on stdin only: a single environment string is
    /// limited by the kernel (`MAX_ARG_STRLEN`, 128 KiB).
    static let maxParamInEnvironment = 64 * 1024

    let argv: [String]
    let killGrace: Duration

    /// Runs the command to completion (or until cancelled) and describes how it ended.
    /// `onSpawn` receives the child's pid as soon as it exists.
    func run(
        context: TaskContext,
        runDirectory: String,
        onSpawn: @escaping @Sendable (Int32) async -> Void
    ) async -> ExecutionOutcome {
        guard let logFD = context.log.fileDescriptor else { return .failed("cannot open the task log") }
        let outputFD = dup(logFD)
        guard outputFD >= 0 else { return .failed("cannot open the task log: \(String(cString: strerror(errno)))") }

        let paramText = context.param.jsonText
        let inputFD: Int32
        do {
            inputFD = try Self.openParamFile(paramText, directory: runDirectory, taskID: context.taskID)
        } catch {
            close(outputFD)
            return .failed("cannot stage the param for stdin: \(error)")
        }

        var environment: [Environment.Key: String?] = [
            "QSCHEDULE_TASK_ID": context.taskID,
            "QSCHEDULE_JOB": context.job,
            "QSCHEDULE_ATTEMPT": String(context.attempt),
            "QSCHEDULE_DEADLINE_MS": context.deadline.map { String(Int64($0.timeIntervalSince1970 * 1000)) } ?? "0",
        ]
        if paramText.utf8.count <= Self.maxParamInEnvironment {
            environment["QSCHEDULE_PARAM"] = paramText
        }

        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: killGrace)]

        let program = argv[0]
        let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
        do {
            let result = try await Subprocess.run(
                executable,
                arguments: Arguments(Array(argv.dropFirst())),
                environment: .inherit.updating(environment),
                platformOptions: options,
                input: .fileDescriptor(FileDescriptor(rawValue: inputFD), closeAfterSpawningProcess: true),
                output: .fileDescriptor(FileDescriptor(rawValue: outputFD), closeAfterSpawningProcess: true),
                error: .combinedWithOutput
            ) { execution in
                await onSpawn(execution.processIdentifier.value)
            }
            switch result.terminationStatus {
            case .exited(0):
                return ExecutionOutcome(result: .succeeded, exitCode: 0, message: "exit code 0")
            case .exited(let code):
                return ExecutionOutcome(result: .failed, exitCode: code, message: "exit code \(code)")
            case .signaled(let signal):
                return ExecutionOutcome(result: .failed, signal: signal, message: "killed by signal \(signal)")
            }
        } catch {
            return .failed("cannot start \(program): \(Self.describe(error))")
        }
    }

    /// Writes the param to a file, opens it for reading and unlinks it: the child reads a
    /// plain file on stdin, so a child that never reads cannot block the agent.
    private static func openParamFile(_ text: String, directory: String, taskID: String) throws -> Int32 {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(taskID).\(UUID().uuidString).param").path
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        defer { unlink(path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path]) }
        return fd
    }

    private static func describe(_ error: any Error) -> String {
        "\(error)"
    }
}
