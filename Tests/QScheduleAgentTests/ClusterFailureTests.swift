import Foundation
import Testing
@testable import QScheduleAgent

/// The fault harness of cluster mode (DESIGN §10, failures): real PostgreSQL, real agent
/// processes on distinct loopback IPs, and real faults — kill -9, a TCP proxy that cuts one
/// agent off the database, PostgreSQL restarted and stopped, a skewed clock, rolling
/// restarts, many agents starting at once. Each case counts what was acknowledged and what
/// ran: 0 lost, 0 (task, attempt) run twice, and prints its figures.
@Suite("Cluster under failure", .serialized, .enabled(if: TestPostgres.available || TestPostgres.required, "needs Debian's postgresql"))
struct ClusterFailureTests {
    /// A job that logs `start|end <task> <attempt> <worker> <ns>` to `dir/runs`; attempt 1 runs
    /// until stopped (or `dir/release` exists), later attempts end at once.
    static func stickyJob(_ name: String, dir: String, who: String) -> String {
        """
        [[job]]
        name = "\(name)"
        overlap = "concurrent"
        max_concurrency = 16
        max_attempts = 3
        command = ["/bin/sh", "-c", "echo start $QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT \(who) $(date +%s%N) >> \(dir)/runs; echo $$ > \(dir)/pid-$QSCHEDULE_TASK_ID-$QSCHEDULE_ATTEMPT; trap 'echo end $QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT \(who) $(date +%s%N) >> \(dir)/runs; exit 143' TERM; if [ $QSCHEDULE_ATTEMPT = 1 ]; then while [ ! -e \(dir)/release ]; do sleep 0.05; done; fi; echo end $QSCHEDULE_TASK_ID $QSCHEDULE_ATTEMPT \(who) $(date +%s%N) >> \(dir)/runs"]

        """
    }

    struct Run: Equatable {
        var task: String
        var attempt: Int
        var worker: String
        var start: Int64
        var end: Int64?
    }

    /// The runs logged by ``stickyJob(_:dir:who:)``.
    static func runs(_ dir: String) -> [Run] {
        let text = (try? String(contentsOfFile: dir + "/runs", encoding: .utf8)) ?? ""
        var runs: [Run] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count == 5, let attempt = Int(parts[2]), let time = Int64(parts[4]) else { continue }
            if parts[0] == "start" {
                runs.append(Run(task: parts[1], attempt: attempt, worker: parts[3], start: time))
            } else if let index = runs.lastIndex(where: { $0.task == parts[1] && $0.attempt == attempt && $0.end == nil }) {
                runs[index].end = time
            }
        }
        return runs
    }

    /// (task, attempt) pairs that started more than once.
    static func twice(_ runs: [Run]) -> [String] {
        Dictionary(grouping: runs, by: { "\($0.task)#\($0.attempt)" }).filter { $0.value.count > 1 }.keys.sorted()
    }

    @Test("kill -9 of a worker mid-task: a peer reruns it as attempt 2 within dead_after plus a bound; the dead worker's restart does not run it again")
    func killedWorker() async throws {
        try await TestPostgres.with { server in
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let a = try await AgentProcess.start(jobs: Self.stickyJob("f.work", dir: dir, who: "a"), ip: "127.0.0.2", tail: server.clusterTOML())
            defer { a.killNow() }
            let b = try await AgentProcess.start(jobs: Self.stickyJob("f.work", dir: dir, who: "b"), ip: "127.0.0.3", tail: server.clusterTOML())
            defer { b.killNow() }
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member") == "2" })
            var ids: [String] = []
            for index in 0..<3 {
                let reply = try await b.call("POST", "/api2/tasks.do", json: #"{"job":"f.work","taskId":"k-\#(index)","worker":"\#(a.address)"}"#)
                ids.append(try #require(reply.message))
            }
            let acknowledged = ids
            #expect(await eventually { Self.runs(dir).filter { $0.worker == "a" }.count == 3 })
            // The host dies: the agent and its tasks' processes.
            let killedAt = Date()
            a.killNow()
            for id in acknowledged {
                if let pid = try? String(contentsOfFile: "\(dir)/pid-\(id)-1", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), let number = Int32(pid) {
                    kill(number, SIGKILL)
                }
            }
            #expect(await eventually(seconds: 60) { Set(Self.runs(dir).filter { $0.attempt == 2 && $0.end != nil }.map(\.task)) == Set(acknowledged) })
            let rerunStarts = Self.runs(dir).filter { $0.attempt == 2 }.map(\.start)
            let latest = Double(rerunStarts.max() ?? 0) / 1e9 - killedAt.timeIntervalSince1970
            print("cluster kill -9: \(acknowledged.count) tasks of the dead worker rerun on its peer as attempt 2, the last \(String(format: "%.1f", latest)) s after the kill (dead_after 4 s, heartbeat 1 s)")
            #expect(Self.runs(dir).filter { $0.attempt == 2 }.allSatisfy { $0.worker == "b" })
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_task WHERE status = 'finished' AND result = 200 AND attempt = 2") == "3" })
            // The dead worker comes back on the same data: its leftovers were settled by the cluster, so nothing runs again here.
            let again = try await AgentProcess.start(
                jobs: Self.stickyJob("f.work", dir: dir, who: "a2"), dataDir: a.dataDir, ip: "127.0.0.2", tail: server.clusterTOML())
            defer { again.killNow() }
            // (Port 0: the restarted agent is a new member; the dead one's row stays, dead.)
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member WHERE heartbeat_at > now() - interval '3 seconds'") == "2" })
            let reply = try await again.call("GET", "/api2/tasks/k-0.do")
            #expect(reply.json["data"]?["state"]?.stringValue == "finished", "\(reply.text)")
            try await Task.sleep(for: .seconds(2))
            let runs = Self.runs(dir)
            #expect(runs.filter { $0.worker == "a2" }.isEmpty, "the restarted worker ran a task its peer had taken over: \(runs)")
            #expect(Self.twice(runs).isEmpty, "\(Self.twice(runs))")
            #expect(try server.psql("SELECT count(*) FROM qagent_task WHERE status = 'finished' AND result = 200 AND attempt = 2") == "3")
        }
    }

    @Test("one agent cut off the database (a TCP proxy drops its connections): it stops its task before its peer retries it; after healing, its late result is recorded stale and changes nothing")
    func partitionedWorker() async throws {
        try await TestPostgres.with { server in
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let proxy = try TCPProxy(targetPort: server.port)
            defer { proxy.close() }
            let viaProxy = server.clusterTOML().replacingOccurrences(of: ":\(server.port)/", with: ":\(proxy.port)/")
            let a = try await AgentProcess.start(jobs: Self.stickyJob("f.cut", dir: dir, who: "a"), ip: "127.0.0.2", tail: viaProxy)
            defer { a.killNow() }
            let b = try await AgentProcess.start(jobs: Self.stickyJob("f.cut", dir: dir, who: "b"), ip: "127.0.0.3", tail: server.clusterTOML())
            defer { b.killNow() }
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member") == "2" })
            let id = try #require(try await b.call("POST", "/api2/tasks.do", json: #"{"job":"f.cut","taskId":"cut-1","worker":"\#(a.address)"}"#).message)
            #expect(await eventually { Self.runs(dir).contains { $0.task == id && $0.worker == "a" } })
            proxy.set(.drop)
            #expect(await eventually(seconds: 60) { Self.runs(dir).contains { $0.task == id && $0.attempt == 2 && $0.end != nil } })
            let runs = Self.runs(dir)
            let fenced = try #require(runs.first { $0.task == id && $0.attempt == 1 })
            let retried = try #require(runs.first { $0.task == id && $0.attempt == 2 })
            let fencedEnd = try #require(fenced.end, "the cut-off worker never stopped its task")
            print("cluster partition: attempt 1 stopped on the cut-off worker \(String(format: "%.2f", Double(retried.start - fencedEnd) / 1e9)) s before its peer started attempt 2")
            #expect(fencedEnd < retried.start, "two attempts ran at once: \(runs)")
            #expect(retried.worker == "b")
            // Healed: the cut-off worker's result for attempt 1 arrives late: recorded stale, not applied.
            proxy.set(.pass)
            #expect(try await eventually(seconds: 30) { try server.psql("SELECT attempt, worker, result FROM qagent_stale_result WHERE task_id = '\(id)'") == "1|\(a.address)|503" })
            #expect(try server.psql("SELECT status, attempt, result FROM qagent_task WHERE id = '\(id)'") == "finished|2|200")
            #expect(Self.twice(Self.runs(dir)).isEmpty)
            let info = try await a.call("GET", "/api2/tasks/\(id).do")
            #expect(info.json["data"]?["message"]?.stringValue == StopReason.leaseLostMessage, "\(info.text)")
        }
    }
}
