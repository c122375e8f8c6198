import Foundation
import Testing
@testable import QScheduleAgent

/// Every row of the DESIGN §2 table, in-process: real store, runner and child processes,
/// requests driven through the responder without sockets.
@Suite("Seed HTTP interface")
struct SeedRouteTests {
    /// Jobs used by these tests. `t.count` appends one line per run to `runs.txt` in data_dir.
    static let jobs = """
        [[job]]
        name = "t.quick"
        command = ["/bin/sh", "-c", "cat >/dev/null; exit 0"]
        overlap = "concurrent"
        max_concurrency = 4

        [[job]]
        name = "t.count"
        command = ["/bin/sh", "-c", "echo run >> $DATA_DIR/runs.txt"]

        [[job]]
        name = "t.sleep"
        command = ["/bin/sleep", "30"]
        overlap = "serial"
        max_queued = 1

        [[job]]
        name = "t.discard"
        command = ["/bin/sleep", "30"]
        overlap = "discard"

        [[job]]
        name = "t.off"
        command = ["/bin/true"]
        enabled = false

        """

    // MARK: Authorization

    static let protectedRoutes: [(String, String, String?)] = [
        ("POST", "/api2/jobs/on.do", #"{"jobs":["t.off"]}"#),
        ("POST", "/api2/jobs/off.do", #"{"jobs":["t.quick"]}"#),
        ("GET", "/api2/jobs/t.quick.do", nil),
        ("POST", "/api2/tasks.do", #"{"job":"t.count","param":{}}"#),
        ("POST", "/api2/workers/state.do", #"{"jobName":"t.quick","workers":"{\"127.0.0.1:0\":true}"}"#),
        ("GET", "/api2/workers/t.quick.do", nil),
        ("GET", "/api2/jobs.do", nil),
        ("GET", "/api2/tasks.do", nil),
    ]

    @Test("a missing or wrong Q-Server-Token is 授权失败 on every /api2 path and changes nothing")
    func authorization() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            for (method, path, body) in Self.protectedRoutes {
                let padded = [1, 255, 256, 257, 512].map { testToken + String(repeating: "x", count: $0) }
                for token in [nil, "wrong", "", String(testToken.dropLast())] + padded as [String?] {
                    let reply = try await agent.call(.init(method)!, path, token: token, body: body)
                    #expect(reply.status == .ok)
                    #expect(reply.text == #"{"message":"授权失败","ret":false}"#, "\(method) \(path) token=\(token ?? "none")")
                }
            }
            #expect(await agent.agent.runner.isEnabled("t.off") == false)
            #expect(await agent.agent.runner.isEnabled("t.quick") == true)
            #expect(await agent.agent.runner.activeJobs().isEmpty)
            #expect(try agent.agent.store.task("any") == nil)
            let runs = URL(fileURLWithPath: agent.agent.config.agent.dataDir).appendingPathComponent("runs.txt").path
            #expect(!FileManager.default.fileExists(atPath: runs))
        }
    }

    @Test("every configured token is accepted (rotation)")
    func tokenRotation() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            #expect(try await agent.call(.get, "/api2/jobs/t.quick.do", token: "test-token-0000001").ret == true)
            #expect(try await agent.call(.get, "/api2/jobs/t.quick.do", token: "test-token-0000002").ret == true)
        }
    }

    // MARK: jobs/on.do, jobs/off.do

    static let badJobLists: [String?] = [
        nil, "", "not json", "[]", "{}", #"{"jobs":[]}"#, #"{"jobs":"t.quick"}"#, #"{"jobs":[1]}"#,
        #"{"jobs":[null]}"#, #"{"jobs":["bad name"]}"#, #"{"jobs":["t.quick", true]}"#, #"{"job":["t.quick"]}"#,
    ]

    @Test("on.do / off.do: 参数错误 for a missing, empty or non-string list", arguments: ["on", "off"])
    func jobSwitchBadRequest(action: String) async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            for body in Self.badJobLists {
                let reply = try await agent.call(.post, "/api2/jobs/\(action).do", body: body)
                #expect(reply.status == .ok)
                #expect(reply.text == #"{"message":"参数错误","ret":false}"#, "body: \(body ?? "none")")
            }
        }
    }

    @Test("on.do is all-or-nothing: 启用失败 when any name is unknown here")
    func enableUnknown() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let reply = try await agent.call(.post, "/api2/jobs/on.do", body: #"{"jobs":["t.off","nope"]}"#)
            #expect(reply.message == "启用失败")
            #expect(reply.ret == false)
            #expect(reply.reason == "job_not_found")
            #expect(try await agent.call(.get, "/api2/jobs/t.off.do").data?["state"] == .bool(false))
        }
    }

    @Test("off.do is all-or-nothing: 停止失败 when any name is unknown here")
    func disableUnknown() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let reply = try await agent.call(.post, "/api2/jobs/off.do", body: #"{"jobs":["t.quick","nope"]}"#)
            #expect(reply.message == "停止失败")
            #expect(reply.reason == "job_not_found")
            #expect(try await agent.call(.get, "/api2/jobs/t.quick.do").data?["state"] == .bool(true))
        }
    }

    @Test("on.do / off.do: 操作成功 switches every named job; off refuses new tasks")
    func switchJobs() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let off = try await agent.call(.post, "/api2/jobs/off.do", body: #"{"jobs":["t.quick","t.count"]}"#)
            #expect(off.text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await agent.call(.get, "/api2/jobs/t.quick.do").data?["state"] == .bool(false))
            #expect(try await agent.call(.get, "/api2/jobs/t.count.do").data?["state"] == .bool(false))
            let refused = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick","param":{}}"#)
            #expect(refused.message == "重试失败")
            #expect(refused.reason == "job_disabled")
            let on = try await agent.call(.post, "/api2/jobs/on.do", body: #"{"jobs":["t.quick","t.off"]}"#)
            #expect(on.text == #"{"message":"操作成功","ret":true}"#)
            #expect(try await agent.call(.get, "/api2/jobs/t.off.do").data?["state"] == .bool(true))
        }
    }

    @Test("on.do / off.do: a store failure is 启用失败 / 停止失败 and changes nothing")
    func switchStoreFailure() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            try agent.agent.store.close()
            let on = try await agent.call(.post, "/api2/jobs/on.do", body: #"{"jobs":["t.off"]}"#)
            #expect(on.message == "启用失败")
            #expect(on.reason == "store_unavailable")
            let off = try await agent.call(.post, "/api2/jobs/off.do", body: #"{"jobs":["t.quick"]}"#)
            #expect(off.message == "停止失败")
            #expect(await agent.agent.runner.isEnabled("t.off") == false)
            #expect(await agent.agent.runner.isEnabled("t.quick") == true)
        }
    }

    // MARK: jobs/$job_name.do

    @Test("job info: 参数错误 for an invalid name, job不存在 for an unknown one")
    func jobInfoErrors() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            for path in ["/api2/jobs/bad%20name.do", "/api2/jobs/\(String(repeating: "a", count: 129)).do", "/api2/jobs/a%2Fb.do", "/api2/jobs/%C3%A9.do"] {
                #expect(try await agent.call(.get, path).text == #"{"message":"参数错误","ret":false}"#, "\(path)")
            }
            #expect(try await agent.call(.get, "/api2/jobs/no.such.job.do").text == #"{"message":"job不存在","ret":false}"#)
            #expect(try await agent.call(.get, "/api2/jobs/\(String(repeating: "a", count: 128)).do").message == "job不存在")
        }
    }

    @Test("job info: the seed's fields, and 查询失败 when the store cannot be read")
    func jobInfo() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let reply = try await agent.call(.get, "/api2/jobs/t.sleep.do")
            #expect(reply.ret == true)
            let data = try #require(reply.data?.objectValue)
            #expect(Set(data.keys) == [
                "appId", "appName", "name", "desc", "cron", "state", "type", "recover", "timeout", "loadBalance",
                "consecutiveFailTimesAlertThreshold", "lastRun", "lastState", "lastDuration", "lastUpdate", "nextRun",
            ])
            #expect(data["appId"] == .int(7))
            #expect(data["appName"] == .string("qschedule.test"))
            #expect(data["name"] == .string("t.sleep"))
            #expect(data["type"] == .string("remote"))
            #expect(data["recover"] == .string("retry"))
            #expect(data["lastState"] == .int(0))
            #expect(data["state"] == .bool(true))
            try agent.agent.store.close()
            let failed = try await agent.call(.get, "/api2/jobs/t.sleep.do")
            #expect(failed.message == "查询失败")
            #expect(failed.ret == false)
        }
    }

    @Test("a finished task sets lastRun, lastState, lastDuration and lastUpdate")
    func lastFields() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let before = Date().epochMilliseconds
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick","param":{"a":1}}"#).ret == true)
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.off","param":{}}"#).reason == "job_disabled")
            #expect(try await eventually { try await agent.call(.get, "/api2/jobs/t.quick.do").data?["lastState"] == .int(200) })
            let data = try #require(try await agent.call(.get, "/api2/jobs/t.quick.do").data)
            let lastRun = try #require(data["lastRun"]?.intValue)
            let lastUpdate = try #require(data["lastUpdate"]?.intValue)
            let duration = try #require(data["lastDuration"]?.intValue)
            #expect(lastRun >= before)
            #expect(lastUpdate == lastRun + duration)

        }
    }

    // MARK: tasks.do

    static let badDispatches: [String?] = [
        nil, "", "{", "[]", "null", #""t.quick""#, "{}", #"{"param":{}}"#, #"{"job":1,"param":{}}"#,
        #"{"job":null}"#, #"{"job":"bad name","param":{}}"#, #"{"job":"t.quick","param":[]}"#,
        #"{"job":"t.quick","param":"{}"}"#, #"{"job":"t.quick","param":1}"#, #"{"job":"t.quick","param":true}"#,
        #"{"job":"t.quick","param":{},"taskId":""}"#, #"{"job":"t.quick","param":{},"taskId":"a b"}"#,
        #"{"job":"t.quick","param":{},"taskId":7}"#, #"{"job":"t.quick","param":{},"taskId":"../x"}"#,
        "{\"job\":\"t.quick\",\"param\":{},\"taskId\":\"\(String(repeating: "t", count: 129))\"}",
    ]

    @Test("tasks.do: 参数错误 for a missing job, a non-object param or a bad taskId; nothing is journaled")
    func dispatchBadRequest() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            for body in Self.badDispatches {
                let reply = try await agent.call(.post, "/api2/tasks.do", body: body)
                #expect(reply.status == .ok)
                #expect(reply.text == #"{"message":"参数错误","ret":false}"#, "body: \(body ?? "none")")
            }
            #expect(await agent.agent.runner.activeJobs().isEmpty)
            #expect(try agent.agent.store.jobState("t.quick").lastRun == 0)
        }
    }

    @Test("tasks.do: a param nested 63 deep is taken; one level more, or 500 levels, is 参数错误")
    func dispatchNesting() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            func body(paramDepth: Int) -> String {
                // The param object itself is one level; the body around it another.
                let inner = String(repeating: "[", count: paramDepth - 1) + String(repeating: "]", count: paramDepth - 1)
                return #"{"job":"t.quick","param":{"x":\#(inner)}}"#
            }
            #expect(try await agent.call(.post, "/api2/tasks.do", body: body(paramDepth: 63)).ret == true)
            for depth in [64, 500] {
                let reply = try await agent.call(.post, "/api2/tasks.do", body: body(paramDepth: depth))
                #expect(reply.text == #"{"message":"参数错误","ret":false}"#, "param depth \(depth)")
            }
        }
    }

    @Test("tasks.do: the answer is the task id, in the seed's shape yyMMdd.HHmmss.<ip>.<pid>.<seq>")
    func dispatchAccepted() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let reply = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick","param":{"k":"v"}}"#)
            #expect(reply.ret == true)
            let id = try #require(reply.message)
            let pid = ProcessInfo.processInfo.processIdentifier
            #expect(id.wholeMatch(of: try Regex(#"\d{6}\.\d{6}\.127\.0\.0\.1\.\#(pid)\.\d+"#)) != nil, "\(id)")
            let task = try #require(try agent.agent.store.task(id))
            #expect(task.job == "t.quick")
            #expect(task.param == #"{"k":"v"}"#)
            // A missing param is an empty object.
            let noParam = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick"}"#)
            #expect(try agent.agent.store.task(try #require(noParam.message))?.param == "{}")
        }
    }

    @Test("tasks.do: a repeated taskId returns the same answer and never runs twice")
    func dispatchIdempotent() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let body = #"{"job":"t.count","param":{},"taskId":"deploy-42:step.1"}"#
            for _ in 0..<3 {
                #expect(try await agent.call(.post, "/api2/tasks.do", body: body).text == #"{"message":"deploy-42:step.1","ret":true}"#)
            }
            #expect(try await eventually { try agent.agent.store.task("deploy-42:step.1")?.status == .finished })
            // Concurrent repeats after it finished: still the same answer, still one run.
            try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<8 { group.addTask { try await agent.call(.post, "/api2/tasks.do", body: body).message } }
                for try await message in group { #expect(message == "deploy-42:step.1") }
            }
            try await Task.sleep(for: .milliseconds(300))
            let runs = URL(fileURLWithPath: agent.agent.config.agent.dataDir).appendingPathComponent("runs.txt").path
            #expect(try String(contentsOfFile: runs, encoding: .utf8) == "run\n")
            // The same id for another job is refused, not silently mapped.
            let other = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick","param":{},"taskId":"deploy-42:step.1"}"#)
            #expect(other.message == "重试失败")
            #expect(other.reason == "task_id_conflict")
            // The same id and job with another param is refused too; no param is the same as {}.
            for param in [#"{"a":1}"#, "{\"a\":null}", "{\"\":{}}"] {
                let changed = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.count","param":\#(param),"taskId":"deploy-42:step.1"}"#)
                #expect(changed.text == #"{"message":"重试失败","reason":"task_id_conflict","ret":false}"#, "param \(param)")
            }
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.count","taskId":"deploy-42:step.1"}"#).ret == true)
            let keyed = #"{"job":"t.count","param":{"b":[1,{"y":2,"x":1}],"a":"s"},"taskId":"keyed"}"#
            #expect(try await agent.call(.post, "/api2/tasks.do", body: keyed).ret == true)
            let reordered = #"{"taskId":"keyed","param":{"a":"s","b":[1,{"x":1,"y":2}]},"job":"t.count"}"#
            #expect(try await agent.call(.post, "/api2/tasks.do", body: reordered).ret == true, "key order is not a different param")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try String(contentsOfFile: runs, encoding: .utf8) == "run\nrun\n")
        }
    }

    @Test("tasks.do: concurrent first dispatches of one taskId run it once")
    func dispatchIdempotentRace() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let body = #"{"job":"t.count","param":{},"taskId":"race-1"}"#
            try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<10 { group.addTask { try await agent.call(.post, "/api2/tasks.do", body: body).message } }
                for try await message in group { #expect(message == "race-1") }
            }
            #expect(try await eventually { try agent.agent.store.task("race-1")?.status == .finished })
            try await Task.sleep(for: .milliseconds(300))
            let runs = URL(fileURLWithPath: agent.agent.config.agent.dataDir).appendingPathComponent("runs.txt").path
            #expect(try String(contentsOfFile: runs, encoding: .utf8) == "run\n")
        }
    }

    @Test("tasks.do: 重试失败 with a reason for an unknown, disabled, draining, offline or overloaded job")
    func dispatchRefusals() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            func dispatch(_ job: String) async throws -> Reply {
                try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"\#(job)","param":{}}"#)
            }
            var reply = try await dispatch("no.such.job")
            #expect(reply.text == #"{"message":"重试失败","reason":"job_not_found","ret":false}"#)
            #expect(try await dispatch("t.off").reason == "job_disabled")

            // serial, max_queued = 1: one runs, one waits, the third is refused.
            #expect(try await dispatch("t.sleep").ret == true)
            #expect(try await dispatch("t.sleep").ret == true)
            reply = try await dispatch("t.sleep")
            #expect(reply.message == "重试失败")
            #expect(reply.reason == "overloaded")

            // discard: refused while one is active.
            #expect(try await dispatch("t.discard").ret == true)
            #expect(try await dispatch("t.discard").reason == "job_busy")

            try await agent.agent.runner.setCanSchedule(false, job: "t.quick")
            #expect(try await dispatch("t.quick").reason == "worker_offline")

            await agent.agent.runner.setDraining(true)
            #expect(try await dispatch("t.count").reason == "draining")
        }
    }

    @Test("tasks.do: the host-wide max_running + max_queued bound refuses with overloaded")
    func hostCapacity() async throws {
        try await InProcessAgent.with(jobs: Self.jobs, agentExtra: "max_running = 1\nmax_queued = 1") { agent in
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.sleep"}"#).ret == true)
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.discard"}"#).ret == true)
            let third = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.quick"}"#)
            #expect(third.reason == "overloaded")
            let active = await agent.agent.runner.activeJobs()
            #expect(active.map(\.name) == ["t.discard", "t.sleep"])
            #expect(active.first { $0.name == "t.discard" }?.queued == 1)
        }
    }

    @Test("tasks.do: 内部错误 when the journal cannot commit; nothing runs")
    func dispatchJournalFailure() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            try agent.agent.store.close()
            let reply = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.count","param":{}}"#)
            #expect(reply.text == #"{"message":"内部错误","reason":"journal_failed","ret":false}"#)
            let given = try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.count","param":{},"taskId":"x1"}"#)
            #expect(given.message == "内部错误")
            try await Task.sleep(for: .milliseconds(200))
            #expect(await agent.agent.runner.activeJobs().isEmpty)
            let runs = URL(fileURLWithPath: agent.agent.config.agent.dataDir).appendingPathComponent("runs.txt").path
            #expect(!FileManager.default.fileExists(atPath: runs))
        }
    }

    // MARK: workers

    @Test("workers/$job.do: this agent as the job's one worker; 参数错误, job不存在, 查询失败")
    func workersList() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let reply = try await agent.call(.get, "/api2/workers/t.quick.do")
            let address = agent.agent.identity.address
            #expect(reply.text == #"{"data":[{"address":"\#(address)","canSchedule":true,"hostname":"\#(address)","jobName":"t.quick"}],"ret":true}"#)
            #expect(try await agent.call(.get, "/api2/workers/bad%20name.do").text == #"{"message":"参数错误","ret":false}"#)
            #expect(try await agent.call(.get, "/api2/workers/nope.do").text == #"{"message":"job不存在","ret":false}"#)
            try agent.agent.store.close()
            #expect(try await agent.call(.get, "/api2/workers/t.quick.do").message == "查询失败")
        }
    }

    @Test("workers/state.do: every documented outcome")
    func workersState() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let me = agent.agent.identity.address
            func state(_ body: String?) async throws -> Reply { try await agent.call(.post, "/api2/workers/state.do", body: body) }
            func escaped(_ json: String) -> String { json.replacingOccurrences(of: "\"", with: "\\\"") }

            for body in [nil, "x", "{}", #"{"jobName":"t.quick"}"#, #"{"workers":"{}"}"#, #"{"jobName":"t.quick","workers":1}"#,
                         #"{"jobName":"t.quick","workers":[]}"#, #"{"jobName":"bad name","workers":"{}"}"#, #"{"jobName":5,"workers":"{}"}"#] as [String?] {
                #expect(try await state(body).text == #"{"message":"参数错误","ret":false}"#, "\(body ?? "none")")
            }
            for workers in ["not json", "[]", "{}", #"{"\#(me)":"false"}"#, #"{"\#(me)":0}"#, #"{"nohost":true}"#, #"{"example.com:1":true}"#, #"{"1.2.3.4:99999":true}"#] {
                let reply = try await state(#"{"jobName":"t.quick","workers":"\#(escaped(workers))"}"#)
                #expect(reply.text == #"{"message":"workers json 格式非法","ret":false}"#, "\(workers)")
            }
            // Taking every known worker (this agent) offline is refused; nothing changes.
            var reply = try await state(#"{"jobName":"t.quick","workers":"\#(escaped(#"{"\#(me)":false}"#))"}"#)
            #expect(reply.text == #"{"message":"所有机器不能全部下线","ret":false}"#)
            reply = try await state(#"{"jobName":"t.quick","workers":{"\#(me)":false,"10.9.9.9:20010":true}}"#)
            #expect(reply.message == "所有机器不能全部下线")
            #expect(try agent.agent.store.jobState("t.quick").canSchedule == true)

            // Unknown addresses: known ones applied, the answer says to verify.
            try await agent.agent.runner.setCanSchedule(false, job: "t.quick")
            reply = try await state(#"{"jobName":"t.quick","workers":{"\#(me)":true,"10.9.9.9:20010":false}}"#)
            #expect(reply.text == #"{"message":"可能存在未操作成功的机器,请调用查看接口验证","reason":"unknown_worker","ret":false}"#)
            #expect(await agent.agent.runner.canSchedule("t.quick") == true)

            reply = try await state(#"{"jobName":"nope","workers":{"\#(me)":true}}"#)
            #expect(reply.message == "操作失败")
            #expect(reply.reason == "job_not_found")

            try await agent.agent.runner.setCanSchedule(false, job: "t.quick")
            reply = try await state(#"{"jobName":"t.quick","workers":"\#(escaped(#"{"\#(me)":true}"#))"}"#)
            #expect(reply.text == #"{"message":"操作成功","ret":true}"#)
            #expect(try agent.agent.store.jobState("t.quick").canSchedule == true)

            try agent.agent.store.close()
            reply = try await state(#"{"jobName":"t.quick","workers":{"\#(me)":true}}"#)
            #expect(reply.message == "操作失败")
            #expect(reply.reason == "store_unavailable")
        }
    }

    // MARK: check

    @Test("check: 参数错误 for anything but an IP literal; 查询失败 not_this_host for another host's IP")
    func checkErrors() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            for ip in ["abc", "999.1.1.1", "1.2.3", "localhost", "%20", "1.2.3.4.5", "::g"] {
                #expect(try await agent.call(.get, "/api/check/\(ip).do", token: nil).text == #"{"message":"参数错误","ret":false}"#, "\(ip)")
            }
            let other = try await agent.call(.get, "/api/check/203.0.113.7.do", token: nil)
            #expect(other.text == #"{"message":"查询失败","reason":"not_this_host","ret":false}"#)
            #expect(try await agent.call(.get, "/api/check/2001:db8::7.do", token: nil).reason == "not_this_host")
        }
    }

    @Test("check: idle is an empty list for every address of this host; busy lists running and queued jobs")
    func checkBusyIdle() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let addresses = ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] + HostInterfaces.addresses().map(\.description)
            for ip in addresses {
                #expect(try await agent.call(.get, "/api/check/\(ip).do", token: nil).text == #"{"data":[],"ret":true}"#, "\(ip)")
            }
            let before = Date().epochMilliseconds
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.sleep"}"#).ret == true)
            #expect(try await agent.call(.post, "/api2/tasks.do", body: #"{"job":"t.sleep"}"#).ret == true)
            try await Task.sleep(for: .milliseconds(50))
            let reply = try await agent.call(.get, "/api/check/127.0.0.1.do", token: nil)
            let list = try #require(reply.data?.arrayValue)
            #expect(list.count == 1)
            let job = try #require(list.first)
            #expect(job["name"] == .string("t.sleep"))
            let lastRun = try #require(job["lastRun"]?.intValue)
            let lastUpdate = try #require(job["lastUpdate"]?.intValue)
            #expect(lastRun >= before)
            #expect(job["lastDuration"]?.intValue == lastUpdate - lastRun)
            #expect(job["lastState"] == .int(0))

            // Queued only: a task waiting behind the host limit still counts as busy.
            let running = try #require(await agent.agent.runner.activeJobs().first)
            #expect(running.running == 1)
            #expect(running.queued == 1)

            try agent.agent.store.close()
            #expect(try await agent.call(.get, "/api/check/127.0.0.1.do", token: nil).message == "查询失败")
        }
    }

    // MARK: transport

    @Test("unknown path 404, wrong method 405, body over the limit 413, each with a ret:false envelope")
    func transportErrors() async throws {
        try await InProcessAgent.with(jobs: Self.jobs, agentExtra: "max_request_bytes = 4096") { agent in
            let missing = try await agent.call(.get, "/api2/nothing.do")
            #expect(missing.status == .notFound)
            #expect(missing.text == #"{"message":"no such endpoint","reason":"not_found","ret":false}"#)
            let wrong = try await agent.call(.delete, "/api2/tasks.do")
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.ret == false)
            #expect(wrong.reason == "method_not_allowed")
            let put = try await agent.call(.put, "/api2/tasks.do")
            #expect(put.status == .methodNotAllowed)
            // GET on.do is the info of a job named "on" (absent here), not a 405.
            #expect(try await agent.call(.get, "/api2/jobs/on.do").message == "job不存在")
            let big = #"{"job":"t.quick","param":{"x":""# + String(repeating: "a", count: 5000) + #""}}"#
            let tooLarge = try await agent.call(.post, "/api2/tasks.do", body: big)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.text == #"{"message":"参数错误","reason":"body_too_large","ret":false}"#)
            #expect(await agent.agent.runner.activeJobs().isEmpty)
            #expect(try await agent.call(.get, "/healthz", token: nil).status == .ok)
            #expect(try await agent.call(.get, "/readyz", token: nil).status == .ok)
            await agent.agent.runner.setDraining(true)
            #expect(try await agent.call(.get, "/readyz", token: nil).status == .serviceUnavailable)
        }
    }

    // MARK: Listing

    @Test("GET /api2/jobs.do lists every job by name; GET /api2/tasks.do pages newest first, filters, never skips tasks of one millisecond, and refuses bad parameters")
    func listing() async throws {
        try await InProcessAgent.with(jobs: Self.jobs) { (agent: InProcessAgent) async throws in
            let jobs = try await agent.call(.get, "/api2/jobs.do")
            #expect(jobs.data?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["t.count", "t.discard", "t.off", "t.quick", "t.sleep"])
            #expect(jobs.data?.arrayValue?.first { $0["name"]?.stringValue == "t.off" }?["state"]?.boolValue == false)
            // 7 tasks, 5 of them journaled in the same millisecond (a page boundary must not skip any).
            let store = agent.agent.store
            for index in 0..<5 {
                try await store.insertTask(TaskRecord(id: "same-\(index)", job: "t.count", param: "{}", trigger: .dispatch, acceptedAt: 5_000))
            }
            try await store.insertTask(TaskRecord(id: "older", job: "t.quick", param: "{}", trigger: .dispatch, acceptedAt: 4_000))
            try await store.insertTask(TaskRecord(id: "newer", job: "t.quick", param: "{}", trigger: .dispatch, acceptedAt: 6_000))
            var seen: [String] = []
            var before: String?
            for _ in 0..<10 {
                let path = "/api2/tasks.do?limit=2" + (before.map { "&before=\($0)" } ?? "")
                let page = try await agent.call(.get, path)
                #expect(page.ret == true, "\(page.text)")
                seen += page.data?["tasks"]?.arrayValue?.compactMap { $0["taskId"]?.stringValue } ?? []
                before = page.data?["next"]?.stringValue
                if before == nil { break }
            }
            #expect(seen == ["newer", "same-4", "same-3", "same-2", "same-1", "same-0", "older"], "\(seen)")
            let filtered = try await agent.call(.get, "/api2/tasks.do?job=t.quick&state=queued&since=4500")
            #expect(filtered.data?["tasks"]?.arrayValue?.compactMap { $0["taskId"]?.stringValue } == ["newer"])
            #expect(filtered.data?["next"] == nil)
            for bad in ["limit=0", "limit=1001", "limit=x", "state=done", "job=a%20b", "since=-1", "before=1.x", "before=abc"] {
                #expect(try await agent.call(.get, "/api2/tasks.do?\(bad)").text == #"{"message":"参数错误","ret":false}"#, "\(bad)")
            }
        }
    }
}
