import Foundation
import Testing
@testable import QScheduleAgent

/// The seed interface answered for the whole cluster from any agent, and the overlap policies
/// held cluster-wide (DESIGN §10), with real agents on 127.0.0.2-4 and a real PostgreSQL.
@Suite("Cluster: seed interface cluster-wide, single instance", .serialized, .enabled(if: TestPostgres.available || TestPostgres.required, "needs Debian's postgresql"))
struct ClusterSeedInterfaceTests {
    /// A command job that marks its start in `dir`, then waits for `dir/release-<task id>` or `dir/release-all`.
    static func heldJob(_ name: String, dir: String, extra: String = "") -> String {
        """
        [[job]]
        name = "\(name)"
        command = ["/bin/sh", "-c", "touch \(dir)/started-$QSCHEDULE_TASK_ID; echo working on $QSCHEDULE_TASK_ID; while [ ! -e \(dir)/release-$QSCHEDULE_TASK_ID ] && [ ! -e \(dir)/release-all ]; do sleep 0.05; done"]
        \(extra)

        """
    }

    static func started(_ dir: String, _ id: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(dir)/started-\(id)")
    }

    @Test("every seed endpoint from any agent: jobs on/off, job info, workers and their switches, task info/log/kill forwarded to the worker, /api/check of a peer, unknown_host, another app's jobs refused")
    func seedInterface() async throws {
        try await TestPostgres.with { server in
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let jobs = Self.heldJob("c.held", dir: dir, extra: "overlap = \"concurrent\"\nmax_concurrency = 8")
                + Self.heldJob("c.serial", dir: dir, extra: "cron = \"0 0 0 1 1 ? 2099\"\ndesc = \"one at a time\"")
            let a = try await AgentProcess.start(jobs: jobs, ip: "127.0.0.2", tail: server.clusterTOML())
            defer { a.killNow() }
            let b = try await AgentProcess.start(jobs: jobs, ip: "127.0.0.3", tail: server.clusterTOML())
            defer { b.killNow() }
            let other = try await AgentProcess.start(
                jobs: Self.heldJob("o.job", dir: dir), ip: "127.0.0.4", tail: server.clusterTOML(), appName: "other.app")
            defer { other.killNow() }
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member") == "3" })
            defer { FileManager.default.createFile(atPath: dir + "/release-all", contents: nil) }

            // Workers: every member serving the job, from either agent.
            var reply = try await b.call("GET", "/api2/workers/c.held.do")
            let listed = try #require(reply.json["data"]?.arrayValue)
            #expect(listed.compactMap { $0["address"]?.stringValue } == [a.address, b.address])
            #expect(listed.allSatisfy { $0["canSchedule"]?.boolValue == true && $0["online"]?.boolValue == true && $0["jobName"]?.stringValue == "c.held" })
            reply = try await a.call("GET", "/api2/workers/c.nope.do")
            #expect(reply.text == #"{"message":"job不存在","ret":false}"#)

            // Job info: the cluster's definition and state, from an agent of its app.
            reply = try await b.call("GET", "/api2/jobs/c.serial.do")
            #expect(reply.json["data"]?["desc"]?.stringValue == "one at a time")
            #expect(reply.json["data"]?["appName"]?.stringValue == "qschedule.test")
            #expect(reply.json["data"]?["nextRun"]?.intValue == 4_070_908_800_000)
            #expect(reply.json["data"]?["state"]?.boolValue == true)
            reply = try await a.call("GET", "/api2/jobs/o.job.do")
            #expect(reply.text == #"{"message":"授权失败","reason":"other_app","ret":false}"#, "another app's job was shown")
            reply = try await other.call("GET", "/api2/jobs/o.job.do")
            #expect(reply.json["data"]?["appName"]?.stringValue == "other.app")
            reply = try await a.call("GET", "/api2/jobs/c.nope.do")
            #expect(reply.text == #"{"message":"job不存在","ret":false}"#)

            // Jobs off everywhere (from a), seen from b; an unknown name changes nothing; another app's job is refused.
            #expect(try await a.call("POST", "/api2/jobs/off.do", json: #"{"jobs":["c.held"]}"#).text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await b.call("GET", "/api2/jobs/c.held.do").json["data"]?["state"]?.boolValue == false)
            reply = try await b.call("POST", "/api2/tasks.do", json: #"{"job":"c.held"}"#)
            #expect(reply.text == #"{"message":"重试失败","reason":"job_disabled","ret":false}"#)
            reply = try await b.call("POST", "/api2/jobs/on.do", json: #"{"jobs":["c.held","c.nope"]}"#)
            #expect(reply.text == #"{"message":"启用失败","reason":"job_not_found","ret":false}"#)
            #expect(try await a.call("GET", "/api2/jobs/c.held.do").json["data"]?["state"]?.boolValue == false, "a failed jobs/on changed something")
            reply = try await a.call("POST", "/api2/jobs/off.do", json: #"{"jobs":["o.job"]}"#)
            #expect(reply.text == #"{"message":"授权失败","reason":"other_app","ret":false}"#)
            reply = try await a.call("POST", "/api2/tasks.do", json: #"{"job":"o.job"}"#)
            #expect(reply.text == #"{"message":"授权失败","reason":"other_app","ret":false}"#)
            #expect(try server.psql("SELECT enabled FROM qagent_job WHERE job = 'o.job'") == "t")
            #expect(try await b.call("POST", "/api2/jobs/on.do", json: #"{"jobs":["c.held"]}"#).ret == true)

            // Worker switches: a off (from b) → tasks go to b; the last online worker cannot go off; unknown addresses.
            reply = try await b.call("POST", "/api2/workers/state.do", json: #"{"jobName":"c.held","workers":"{\"\#(a.address)\":false}"}"#)
            #expect(reply.text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await a.call("GET", "/api2/workers/c.held.do").json["data"]?.arrayValue?.first?["canSchedule"]?.boolValue == false)
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try #require(try await a.call("POST", "/api2/tasks.do", json: #"{"job":"c.held"}"#).message)) }
            let onB = ids
            #expect(try server.psql("SELECT DISTINCT worker FROM qagent_task WHERE id IN ('\(ids.joined(separator: "','"))')") == b.address)
            reply = try await a.call("POST", "/api2/workers/state.do", json: #"{"jobName":"c.held","workers":{"\#(b.address)":false}}"#)
            #expect(reply.text == #"{"message":"所有机器不能全部下线","reason":"last_worker","ret":false}"#)
            #expect(try await a.call("GET", "/api2/workers/c.held.do").json["data"]?.arrayValue?.last?["canSchedule"]?.boolValue == true)
            reply = try await a.call("POST", "/api2/workers/state.do", json: #"{"jobName":"c.held","workers":{"\#(a.address)":true,"127.0.0.9:1":true}}"#)
            #expect(reply.text == #"{"message":"可能存在未操作成功的机器,请调用查看接口验证","reason":"unknown_worker","ret":false}"#)
            #expect(try await b.call("GET", "/api2/workers/c.held.do").json["data"]?.arrayValue?.first?["canSchedule"]?.boolValue == true, "the known address was not applied")
            reply = try await a.call("POST", "/api2/workers/state.do", json: #"{"jobName":"o.job","workers":{"\#(other.address)":false}}"#)
            #expect(reply.text == #"{"message":"授权失败","reason":"other_app","ret":false}"#)

            // Task info and log from a, for tasks b runs: forwarded to b (pid and log are b's).
            let held = onB[0]
            #expect(await eventually { Self.started(dir, held) })
            reply = try await a.call("GET", "/api2/tasks/\(held).do")
            #expect(reply.json["data"]?["state"]?.stringValue == "running")
            #expect(reply.json["data"]?["pid"]?.intValue != nil, "not forwarded to the worker: \(reply.text)")
            #expect(try await eventually { try await a.call("GET", "/api2/tasks/\(held)/log.do").json["data"]?["text"]?.stringValue?.contains("working on \(held)") == true })
            reply = try await a.call("GET", "/api2/tasks/nope-1.do")
            #expect(reply.text == #"{"message":"task不存在","reason":"task_not_found","ret":false}"#)

            // /api/check: a peer's IP lists what runs there; this host; an idle member; not a member
            // (192.0.2.1: all of 127/8 is this host's loopback, so not a member needs another IP).
            reply = try await a.call("GET", "/api/check/127.0.0.3.do", token: nil)
            #expect(reply.json["data"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["c.held"])
            #expect(try await a.call("GET", "/api/check/127.0.0.2.do", token: nil).text == #"{"data":[],"ret":true}"#)
            #expect(try await a.call("GET", "/api/check/127.0.0.4.do", token: nil).text == #"{"data":[],"ret":true}"#)
            reply = try await a.call("GET", "/api/check/192.0.2.1.do", token: nil)
            #expect(reply.text == #"{"message":"查询失败","reason":"unknown_host","ret":false}"#)
            #expect(try await b.call("GET", "/api/check/127.0.0.3.do", token: nil).json["data"]?.arrayValue?.count == 1)

            // Kill from a: forwarded to b; recorded 499 in the cluster.
            #expect(try await a.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(held)"}"#).text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await eventually { try server.psql("SELECT result FROM qagent_task WHERE id = '\(held)'") == "499" })
            reply = try await a.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(held)"}"#)
            #expect(reply.text == #"{"message":"操作失败","reason":"task_finished","ret":false}"#)

            // A serial job: the second task waits pending in the cluster; killing it from b ends it at once.
            let first = try #require(try await a.call("POST", "/api2/tasks.do", json: #"{"job":"c.serial","taskId":"serial-1"}"#).message)
            let second = try #require(try await b.call("POST", "/api2/tasks.do", json: #"{"job":"c.serial","taskId":"serial-2"}"#).message)
            #expect(try server.psql("SELECT status FROM qagent_task WHERE id = '\(second)'") == "pending")
            reply = try await b.call("GET", "/api2/tasks/\(second).do")
            #expect(reply.json["data"]?["state"]?.stringValue == "queued")
            #expect(try await b.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(second)"}"#).ret == true)
            reply = try await a.call("GET", "/api2/tasks/\(second).do")
            #expect(reply.json["data"]?["lastState"]?.intValue == 499)
            #expect(reply.json["data"]?["state"]?.stringValue == "finished")
            FileManager.default.createFile(atPath: "\(dir)/release-\(first)", contents: nil)
            #expect(try await eventually { try server.psql("SELECT result FROM qagent_task WHERE id = '\(first)'") == "200" })
            #expect(!Self.started(dir, second), "a killed pending task ran")
            // Job info shows the cluster's last result.
            reply = try await b.call("GET", "/api2/jobs/c.serial.do")
            #expect(reply.json["data"]?["lastState"]?.intValue == 200)

            // Status: this agent plus the cluster's membership.
            reply = try await a.call("GET", "/api2/agent/status.do")
            #expect(reply.json["data"]?["cluster"]?["members"]?.intValue == 3)
            #expect(reply.json["data"]?["cluster"]?["online"]?.intValue == 3)

            // Drain b: new tasks go to a; what b holds runs on.
            #expect(try await b.call("POST", "/api2/agent/drain.do").ret == true)
            #expect(try server.psql("SELECT draining FROM qagent_member WHERE address = '\(b.address)'") == "t", "drain not published at once")
            let afterDrain = try #require(try await b.call("POST", "/api2/tasks.do", json: #"{"job":"c.held"}"#).message)
            #expect(try server.psql("SELECT worker FROM qagent_task WHERE id = '\(afterDrain)'") == a.address)
            let stillHeld = onB[1]
            #expect(await eventually { Self.started(dir, stillHeld) })

            // The database gone: this host's check still answers (before the lease runs out and
            // the worker stops its tasks); cluster-wide answers fail with their message.
            server.stop()
            reply = try await b.call("GET", "/api/check/127.0.0.3.do", token: nil)
            #expect(reply.json["data"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["c.held"], "this host's own answer needs no database: \(reply.text)")
            #expect(try await a.call("GET", "/api2/jobs/c.held.do").text == #"{"message":"查询失败","reason":"cluster_unavailable","ret":false}"#)
            #expect(try await a.call("POST", "/api2/jobs/off.do", json: #"{"jobs":["c.held"]}"#).text == #"{"message":"停止失败","reason":"cluster_unavailable","ret":false}"#)
            #expect(try await a.call("GET", "/api/check/127.0.0.3.do", token: nil).text == #"{"message":"查询失败","reason":"cluster_unavailable","ret":false}"#)
        }
    }

    /// Reads `start|end <id> <ns>` lines and returns the most tasks that ran at once, and the ids that ran.
    static func concurrency(_ path: String) -> (peak: Int, ran: [String]) {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var events: [(time: Int64, delta: Int)] = []
        var ran: [String] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let time = Int64(parts[2]) else { continue }
            if parts[0] == "start" { ran.append(String(parts[1])) }
            events.append((time, parts[0] == "start" ? 1 : -1))
        }
        var current = 0, peak = 0
        for event in events.sorted(by: { $0.time < $1.time || ($0.time == $1.time && $0.delta < $1.delta) }) {
            current += event.delta
            peak = max(peak, current)
        }
        return (peak, ran)
    }

    @Test("agents with mutual TLS: a request to one agent about a task its peer runs is forwarded over HTTPS, the agent showing its own certificate and trusting [cluster] ca_file")
    func peersOverMutualTLS() async throws {
        try await TestPostgres.with { server in
            let certs = try TestCertificates.make()
            defer { certs.remove() }
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let jobs = Self.heldJob("c.tls", dir: dir)
            let tail = server.clusterTOML() + "ca_file = \"\(certs.caFile)\"\n"
            let a = try await AgentProcess.start(jobs: jobs, agentExtra: certs.agentLines(mutual: true), ip: "127.0.0.2", tail: tail)
            defer { a.killNow() }
            let b = try await AgentProcess.start(jobs: jobs, agentExtra: certs.agentLines(mutual: true), ip: "127.0.0.3", tail: tail)
            defer { b.killNow() }
            defer { FileManager.default.createFile(atPath: dir + "/release-all", contents: nil) }
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member") == "2" })
            let client = HTTPTransport(timeout: 10, tls: ClientTLSSettings(caFile: certs.caFile, certificateFile: certs.clientCert, keyFile: certs.clientKey))
            @Sendable func call(_ agent: AgentProcess, _ method: String, _ path: String, json: String? = nil) async throws -> JSONValue {
                let reply = try await client.send(method, URL(string: "https://\(agent.address)\(path)")!, token: testToken, body: json.map { Data($0.utf8) })
                return JSONValue(parsing: reply.body) ?? .null
            }
            let id = try #require(try await call(a, "POST", "/api2/tasks.do", json: #"{"job":"c.tls","taskId":"tls-1","worker":"\#(b.address)"}"#)["message"]?.stringValue)
            #expect(await eventually { Self.started(dir, id) })
            // From a, about b's task: forwarded to b (its pid and log are b's own).
            let info = try await call(a, "GET", "/api2/tasks/\(id).do")
            #expect(info["data"]?["state"]?.stringValue == "running" && info["data"]?["pid"]?.intValue != nil, "not forwarded: \(info.jsonText)")
            #expect(try await eventually { try await call(a, "GET", "/api2/tasks/\(id)/log.do")["data"]?["text"]?.stringValue?.contains("working on \(id)") == true })
            #expect(try await call(a, "POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).jsonText == #"{"message":"操作成功","ret":true}"#)
            #expect(try await eventually { try server.psql("SELECT result FROM qagent_task WHERE id = '\(id)'") == "499" })
            #expect(!a.log.contains("forwarding to the task's worker failed"), "\(a.log.suffix(2000))")
        }
    }

    @Test("overlap holds cluster-wide: serial runs one at a time across agents, max_concurrency counts the cluster, discard refuses, cover kills the running one on its worker; round_robin alternates")
    func singleInstance() async throws {
        try await TestPostgres.with { server in
            let dir = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            func timed(_ name: String, _ extra: String) -> String {
                """
                [[job]]
                name = "\(name)"
                command = ["/bin/sh", "-c", "echo start $QSCHEDULE_TASK_ID $(date +%s%N) >> \(dir)/\(name).log; sleep 0.3; echo end $QSCHEDULE_TASK_ID $(date +%s%N) >> \(dir)/\(name).log"]
                \(extra)

                """
            }
            let jobs = timed("s.serial", "overlap = \"serial\"\nload_balance = \"round_robin\"") + timed("s.pair", "overlap = \"concurrent\"\nmax_concurrency = 2")
                + timed("s.rr", "overlap = \"concurrent\"\nmax_concurrency = 8\nload_balance = \"round_robin\"")
                + Self.heldJob("s.discard", dir: dir, extra: "overlap = \"discard\"") + Self.heldJob("s.cover", dir: dir, extra: "overlap = \"cover\"")
            let a = try await AgentProcess.start(jobs: jobs, ip: "127.0.0.2", tail: server.clusterTOML())
            defer { a.killNow() }
            let b = try await AgentProcess.start(jobs: jobs, ip: "127.0.0.3", tail: server.clusterTOML())
            defer { b.killNow() }
            #expect(try await eventually { try server.psql("SELECT count(*) FROM qagent_member") == "2" })
            defer { FileManager.default.createFile(atPath: dir + "/release-all", contents: nil) }

            // serial: 6 tasks dispatched at once through both agents → all run, never two at once.
            // s.pair (max_concurrency 2, each agent could run 2 itself): at most 2 at once in the cluster.
            var accepted: [String: [String]] = [:]
            try await withThrowingTaskGroup(of: (String, String?).self) { group in
                for index in 0..<6 {
                    for job in ["s.serial", "s.pair"] {
                        group.addTask {
                            let agent = index.isMultiple(of: 2) ? a : b
                            return (job, try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#).message)
                        }
                    }
                }
                for try await (job, id) in group { if let id { accepted[job, default: []].append(id) } }
            }
            #expect(accepted["s.serial"]?.count == 6 && accepted["s.pair"]?.count == 6, "\(accepted)")
            #expect(try await eventually(seconds: 60) {
                try server.psql("SELECT count(*) FROM qagent_task WHERE job IN ('s.serial', 's.pair') AND status = 'finished' AND result = 200") == "12"
            })
            let serial = Self.concurrency(dir + "/s.serial.log"), pair = Self.concurrency(dir + "/s.pair.log")
            print("cluster overlap: serial peak \(serial.peak) over \(serial.ran.count) runs; max_concurrency 2 peak \(pair.peak) over \(pair.ran.count) runs")
            #expect(serial.peak == 1, "two serial tasks ran at once")
            #expect(Set(serial.ran) == Set(accepted["s.serial"] ?? []) && serial.ran.count == 6)
            #expect(pair.peak == 2, "max_concurrency 2 ran \(pair.peak) at once")
            #expect(Set(pair.ran) == Set(accepted["s.pair"] ?? []) && pair.ran.count == 6)
            #expect(try server.psql("SELECT count(DISTINCT worker) FROM qagent_task WHERE job = 's.serial'") == "2", "serial ran on one worker only (round_robin must spread it): not a cluster test")

            // discard: one running anywhere → refused from either agent.
            let kept = try #require(try await a.call("POST", "/api2/tasks.do", json: #"{"job":"s.discard"}"#).message)
            #expect(await eventually { Self.started(dir, kept) })
            for agent in [a, b] {
                let reply = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"s.discard"}"#)
                #expect(reply.text == #"{"message":"重试失败","reason":"job_busy","ret":false}"#)
            }
            FileManager.default.createFile(atPath: "\(dir)/release-\(kept)", contents: nil)

            // cover: a newer task (dispatched on the other agent) stops the running one on its worker.
            let old = try #require(try await a.call("POST", "/api2/tasks.do", json: #"{"job":"s.cover","taskId":"cover-old"}"#).message)
            #expect(await eventually { Self.started(dir, old) })
            let new = try #require(try await b.call("POST", "/api2/tasks.do", json: #"{"job":"s.cover","taskId":"cover-new"}"#).message)
            #expect(try await eventually { try server.psql("SELECT result, message FROM qagent_task WHERE id = '\(old)'") == "499|cancelled: covered by task \(new)" })
            #expect(await eventually { Self.started(dir, new) })
            FileManager.default.createFile(atPath: "\(dir)/release-\(new)", contents: nil)
            #expect(try await eventually { try server.psql("SELECT result FROM qagent_task WHERE id = '\(new)'") == "200" })

            // round_robin: in turn, in address order.
            var order: [String] = []
            for _ in 0..<6 {
                let id = try #require(try await a.call("POST", "/api2/tasks.do", json: #"{"job":"s.rr"}"#).message)
                order.append(try server.psql("SELECT worker FROM qagent_task WHERE id = '\(id)'"))
            }
            #expect(Set(order.enumerated().filter { $0.offset.isMultiple(of: 2) }.map(\.element)).count == 1)
            #expect(Set(order).count == 2 && zip(order, order.dropFirst()).allSatisfy { $0 != $1 }, "not in turn: \(order)")
        }
    }

    @Test("admission picks: free slots, pinned workers, the worker that refused avoided, round-robin in turn")
    func picks() {
        var state = ClusterAdmission.JobState(
            job: "j", enabled: true, policy: ClusterJobPolicy(overlap: .concurrent, maxConcurrency: 3, loadBalance: "round_robin"),
            assignments: 5, serving: ["a:1", "b:1", "c:1"], eligible: ["a:1", "b:1"],
            active: [.init(id: "t0", worker: "a:1", claimed: true)],
            pending: [.init(id: "t1"), .init(id: "t2", pinned: "c:1"), .init(id: "t3"), .init(id: "t4")])
        // 2 free slots; t2's pinned worker is not eligible: t1 and t3 go, in turn from counter 5.
        #expect(ClusterAdmission.picks(for: state).map { "\($0.id)>\($0.worker)" } == ["t1>b:1", "t3>a:1"])
        state.policy = ClusterJobPolicy(overlap: .serial, loadBalance: "random")
        state.active = []
        state.pending = [.init(id: "t5", refusedBy: "a:1")]
        #expect(ClusterAdmission.picks(for: state, random: { _ in 0 }).map(\.worker) == ["b:1"])
        state.active = [.init(id: "t0", worker: "a:1", claimed: false)]
        #expect(ClusterAdmission.picks(for: state).isEmpty, "serial with one active admitted another")
    }
}
