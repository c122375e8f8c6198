import CQAgentShims
import Foundation
import Synchronization
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs a command handler (`command = [...]` in `agent.conf`) as a child process.
///
/// The child gets its own session and process group; the param as JSON on stdin and in
/// `QSCHEDULE_PARAM`; `QSCHEDULE_TASK_ID`, `QSCHEDULE_JOB`, `QSCHEDULE_ATTEMPT`,
/// `QSCHEDULE_DEADLINE_MS`; the job's `env`, `cwd` and `user`. Its stdout and stderr are read
/// from one pipe into the task's capped log. When the task is stopped (timeout, kill,
/// cover, shutdown), the whole group gets SIGTERM, then SIGKILL after `killGrace`, and
/// descendants that left the group with `setsid` are found and killed: none survives.
struct CommandRunner: Sendable {
    /// Params larger than this reach the child on stdin only: one environment string is
    /// limited by the kernel (`MAX_ARG_STRLEN`, 128 KiB).
    static let maxParamInEnvironment = 64 * 1024

    let command: CommandSpec
    let killGrace: Duration
    /// Set in every child's environment as `QSCHEDULE_AGENT_INSTANCE`: with the task id it
    /// identifies the task's descendants, even across agents on one host that share a pid.
    let agentInstance: String
    /// The agent's environment at start with the job's `env` (and `user`'s HOME, USER,
    /// LOGNAME) applied: built once, so a spawn does not re-read and re-parse `environ`.
    /// Jobs without `env` or `user` share one copy (10,000 jobs held 10,000 copies).
    private let baseEnvironment: [Environment.Key: String]

    /// The agent's environment at start, without `QSCHEDULE_*`: one dictionary for every job.
    private static let inheritedEnvironment = environment(from: ProcessInfo.processInfo.environment)

    private static func environment(from inherited: [String: String]) -> [Environment.Key: String] {
        var environment: [Environment.Key: String] = [:]
        for (key, value) in inherited where !key.hasPrefix("QSCHEDULE_") { environment[Environment.Key(stringLiteral: key)] = value }
        return environment
    }

    /// `inherited`: the environment children start from (default: the agent's own).
    init(command: CommandSpec, killGrace: Duration, agentInstance: String, inherited: [String: String]? = nil) {
        self.command = command
        self.killGrace = killGrace
        self.agentInstance = agentInstance
        var environment = inherited.map(Self.environment(from:)) ?? Self.inheritedEnvironment
        for (key, value) in command.environment { environment[Environment.Key(stringLiteral: key)] = value }
        if let user = command.user {
            environment["HOME"] = user.home
            environment["USER"] = user.name
            environment["LOGNAME"] = user.name
        }
        baseEnvironment = environment
    }

    /// Runs the command until it exits, stopping it when `stopper` flips; `onSpawn` gets the pid.
    func run(
        context: TaskContext,
        runDirectory: String,
        stopper: TaskStopper,
        onSpawn: @escaping @Sendable (Int32) async -> Void
    ) async -> ExecutionOutcome {
        let paramText = context.paramText
        let inputFD: Int32
        do {
            inputFD = try Self.openParamFile(paramText, directory: runDirectory, taskID: context.taskID)
        } catch {
            return .failed("cannot stage the param for stdin: \(error)")
        }

        var environment = baseEnvironment
        environment["QSCHEDULE_TASK_ID"] = context.taskID
        environment["QSCHEDULE_AGENT_INSTANCE"] = agentInstance
        environment["QSCHEDULE_JOB"] = context.job
        environment["QSCHEDULE_ATTEMPT"] = String(context.attempt)
        environment["QSCHEDULE_DEADLINE_MS"] = context.deadline.map { String($0.epochMilliseconds) } ?? "0"
        if paramText.utf8.count <= Self.maxParamInEnvironment { environment["QSCHEDULE_PARAM"] = paramText }

        var options = PlatformOptions()
        options.createSession = true
        if let user = command.user {
            options.userID = user.uid
            options.groupID = user.gid
            options.supplementaryGroups = user.groups
        }

        let program = command.argv[0]
        let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
        let log = context.log
        let grace = killGrace
        let taskID = context.taskID
        let instance = agentInstance
        do {
            let result = try await Subprocess.run(
                executable,
                arguments: Arguments(Array(command.argv.dropFirst())),
                environment: .custom(environment),
                workingDirectory: command.workingDirectory.map { FilePath($0) },
                platformOptions: options,
                input: .fileDescriptor(FileDescriptor(rawValue: inputFD), closeAfterSpawningProcess: true),
                output: .sequence,
                error: .combinedWithOutput
            ) { execution -> GroupTeardown in
                let pid = execution.processIdentifier.value
                OrphanReaper.leaders.withLock { _ = $0.insert(pid) }
                await onSpawn(pid)
                let teardown = GroupTeardown()
                stopper.whenStopped { teardown.start(pgid: pid, grace: grace) }
                do {
                    for try await chunk in execution.standardOutput {
                        chunk.withUnsafeBytes { log.append($0) }
                    }
                } catch {
                    // The pipe failed or the child is gone: what was read is in the log.
                }
                return teardown
            }
            OrphanReaper.leaders.withLock { _ = $0.remove(result.processIdentifier.value) }
            if stopper.isStopped {
                await result.closureResult.wait()
                ProcessGroupKiller.sweepEscapees(taskID: taskID, instance: instance)
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
            close(inputFD)
            return .failed("cannot start \(program): \(error)")
        }
    }

    /// The param in an anonymous in-memory file (`memfd_create`), positioned at its start:
    /// the child reads a plain file on stdin, so a child that never reads cannot block the
    /// agent, and no file is created and deleted on disk per task. Falls back to a file in
    /// `directory` (unlinked at once) where memfd is unavailable.
    private static func openParamFile(_ text: String, directory: String, taskID: String) throws -> Int32 {
        var bytes = Array(text.utf8)
        let fd = bytes.withUnsafeMutableBytes { buffer in
            qagent_memfd_with_bytes("qagent-param", buffer.baseAddress, buffer.count)
        }
        if fd >= 0 { return fd }
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(taskID).\(UUID().uuidString).param").path
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        defer { unlink(path) }
        let fileFD = open(path, O_RDONLY | O_CLOEXEC)
        guard fileFD >= 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path]) }
        return fileFD
    }
}

/// The stop of one process group, started from a synchronous callback and awaited later.
final class GroupTeardown: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    func start(pgid: Int32, grace: Duration) {
        task.withLock { task in
            guard task == nil else { return }
            // Unstructured on purpose: the stop is requested from a callback and must run to
            // the end (SIGKILL) even if the task that asked is cancelled meanwhile.
            task = Task { await ProcessGroupKiller.terminate(pgid: pgid, grace: grace) }
        }
    }

    func wait() async {
        await task.withLock { $0 }?.value
    }
}
