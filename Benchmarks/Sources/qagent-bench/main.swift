// qagent-bench: measurements printed side by side with a baseline, in one run.
// Run through Benchmarks/*.sh (release build). Never used by tests.
import Foundation
import Logging
import QScheduleAgent

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1]) else { return fallback }
    return value
}

switch arguments.first {
case "cron-next": CronNextBenchmark.run(iterations: option("--iterations", 200_000))
case "idle-cpu": try await IdleCPUBenchmark.run(jobs: option("--jobs", 10_000), seconds: option("--seconds", 10))
case "lateness": try await LatenessBenchmark.run(jobs: option("--jobs", 20), seconds: option("--seconds", 120))
case "exec": try await ExecutionBenchmark.run(tasks: option("--tasks", 2000), parallelism: option("--parallel", 2))
case "dispatch": try await DispatchBenchmark.run(dispatches: option("--dispatches", 5000), concurrency: option("--concurrency", 64))
case "json": JSONBenchmark.run(bytes: option("--bytes", 1_000_000))
case "agent":
    // The qagent CLI with a no-op Swift handler, bench.noop, compiled in (Benchmarks/peers.sh).
    var handlers = HandlerRegistry()
    handlers.register("bench.noop") { _ in }
    await QAgent.main(arguments: Array(arguments.dropFirst()), handlers: handlers)
case "restart": try await RestartBenchmark.run(leftovers: option("--leftovers", 10_000), instances: option("--instances", 10), repeats: option("--repeats", 3))
default:
    print("usage: qagent-bench cron-next [--iterations N] | idle-cpu [--jobs N] [--seconds S] | lateness [--jobs N] [--seconds S] | exec [--tasks N] [--parallel P] | dispatch [--dispatches N] [--concurrency C] | json [--bytes B] | restart [--leftovers N] [--instances I] [--repeats R] | agent QAGENT-ARGUMENTS...")
    exit(2)
}
