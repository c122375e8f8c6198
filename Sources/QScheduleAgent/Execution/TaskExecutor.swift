/// How a job's tasks are run: a command from `agent.conf` or a Swift handler.
enum TaskExecutor: Sendable {
    case command(CommandRunner)
    case swift(any JobHandler)
}
