import Foundation
import Testing
@testable import QScheduleAgent

/// An idle host's `/api/check` is answered on the event loop (``IdleCheckHandler``); these
/// check, against the real binary, that it is the responder's answer and that it never says
/// idle while the runner holds a task.
@Suite("End to end: /api/check answered on the event loop when idle", .serialized)
struct IdleCheckTests {
    static let jobs = """
        [[job]]
        name = "ic.hold"
        command = ["/bin/sh", "-c", "while [ ! -f $DATA_DIR/release ]; do sleep 0.05; done"]
        overlap = "concurrent"
        max_concurrency = 2

        [[job]]
        name = "ic.true"
        command = ["/bin/true"]
        overlap = "concurrent"
        max_concurrency = 4

        [[job]]
        name = "ic.fail"
        command = ["/bin/false"]
        overlap = "concurrent"
        max_concurrency = 4
        retries = 1
        retry_backoff = 60

        """

    /// The response without its `Date` header (the only field that may differ by a second).
    private static func withoutDate(_ response: String) -> String {
        response.components(separatedBy: "\r\n").filter { !$0.lowercased().hasPrefix("date:") }.joined(separator: "\r\n")
    }

    @Test("idle: the event loop's answer is the responder's, byte for byte, counted under the same route")
    func sameAnswer() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            let connection = try RawConnection(port: agent.port)
            connection.send("GET /api/check/127.0.0.1.do HTTP/1.1\r\nHost: x\r\n\r\n")
            let fast = try #require(connection.readResponse(seconds: 10))
            // A query is not a form the event loop answers: this one takes the responder.
            connection.send("GET /api/check/127.0.0.1.do?full HTTP/1.1\r\nHost: x\r\n\r\n")
            let full = try #require(connection.readResponse(seconds: 10))
            #expect(fast.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(fast)")
            #expect(fast.hasSuffix("\r\n\r\n" + #"{"data":[],"ret":true}"#), "\(fast)")
            #expect(fast.contains("\r\nDate: ") && fast.contains("\r\nServer: qagent\r\n"), "\(fast)")
            #expect(Set(Self.withoutDate(fast).split(separator: "\r\n")) == Set(Self.withoutDate(full).split(separator: "\r\n")))

            // Other IPs and forms still get the responder's validation.
            #expect(try await agent.call("GET", "/api/check/not-an-ip.do", token: nil).message == "参数错误")
            #expect(try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data == .array([]))

            let metrics = try await agent.call("GET", "/metrics", token: nil).text
            let line = try #require(metrics.split(separator: "\n").first {
                $0.hasPrefix(#"qagent_http_requests_total{method="GET",route="/api/check/{}.do",status="200"}"#)
            })
            #expect(line.hasSuffix(" 4"), "\(line)")

            // Connection: close is honoured.
            let closing = try RawConnection(port: agent.port)
            closing.send("GET /api/check/127.0.0.1.do HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let answer = try #require(closing.readUntilClosed(seconds: 10), "not closed")
            #expect(answer.hasSuffix(#"{"data":[],"ret":true}"#), "\(answer)")
        }
    }

    @Test("pipelined behind a dispatch on one connection: answered after it, and it lists the task")
    func pipelinedBehindDispatch() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            let body = #"{"job":"ic.hold"}"#
            let connection = try RawConnection(port: agent.port)
            connection.send(
                "POST /api2/tasks.do HTTP/1.1\r\nHost: x\r\nQ-Server-Token: \(testToken)\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
                    + "GET /api/check/127.0.0.1.do HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let text = try #require(connection.readUntilClosed(seconds: 15), "not closed")
            let answers = text.components(separatedBy: "HTTP/1.1 200 OK\r\n").dropFirst()
            #expect(answers.count == 2, "\(text)")
            #expect(answers.first?.contains(#""ret":true"#) == true, "\(text)")
            #expect(answers.last?.contains(#""name":"ic.hold""#) == true, "\(text)")
            // Released, so that no held process outlives the test.
            FileManager.default.createFile(atPath: agent.dataDir + "/release", contents: nil)
            #expect(try await eventually { try await agent.call("GET", "/api/check/127.0.0.1.do", token: nil).data == .array([]) })
        }
    }

    @Test("never idle while a task is held: after every acknowledgement the check lists work; once it reads idle, every task has ended")
    func neverIdleWhileHeld() async throws {
        try await AgentProcess.with(jobs: Self.jobs) { agent in
            let check = try RawConnection(port: agent.port)
            func checkIsIdle() throws -> Bool {
                check.send("GET /api/check/127.0.0.1.do HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try #require(check.readResponse(seconds: 10), "no answer to /api/check")
                return answer.hasSuffix(#"{"data":[],"ret":true}"#)
            }
            // Only a failed task waiting out its retry backoff: nothing runs, and still not idle.
            let delayed = try #require(try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"ic.fail"}"#).message)
            #expect(try await eventually {
                let status = try await agent.call("GET", "/api2/agent/status.do").data
                return status?["running"]?.intValue == 0 && status?["queued"]?.intValue == 1
            }, "the failed task waits for its retry")
            #expect(try !checkIsIdle(), "idle read while \(delayed) waits for its retry")
            var ids = [delayed]
            // Held until released: running (two) and queued (two) ic.hold tasks, failures
            // waiting out a 60 s retry backoff (delayed), and silent tasks that end at once
            // (finishing), which may be over before the check is sent.
            let order = ["ic.hold", "ic.true", "ic.fail", "ic.hold", "ic.true", "ic.fail", "ic.hold", "ic.true", "ic.hold"]
            for job in order {
                let reply = try await agent.call("POST", "/api2/tasks.do", json: #"{"job":"\#(job)"}"#)
                let id = try #require(reply.message, "\(reply.text)")
                ids.append(id)
                if job == "ic.true" {
                    if try checkIsIdle() {
                        let state = try await agent.call("GET", "/api2/tasks/\(id).do").data?["state"]
                        #expect(state == .string("finished"), "idle read while \(id) (ic.true) is \(String(describing: state))")
                    }
                } else {
                    #expect(try !checkIsIdle(), "idle read right after \(id) (\(job)) was acknowledged")
                }
            }
            #expect(try await eventually {
                try await agent.call("GET", "/api2/agent/status.do").data?["queued"]?.intValue == 5
            }, "two ic.hold and three ic.fail waiting")
            #expect(try !checkIsIdle())
            // Release the held tasks and kill the delayed ones: then, and only then, idle.
            FileManager.default.createFile(atPath: agent.dataDir + "/release", contents: nil)
            for (id, job) in zip(ids, ["ic.fail"] + order) where job == "ic.fail" {
                #expect(try await agent.call("POST", "/api2/tasks/kill.do", json: #"{"taskId":"\#(id)"}"#).ret == true)
            }
            var idleAt: Date?
            let deadline = Date().addingTimeInterval(60)
            while idleAt == nil, Date() < deadline {
                if try checkIsIdle() { idleAt = Date() } else { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(idleAt != nil, "never idle")
            for id in ids {
                let info = try await agent.call("GET", "/api2/tasks/\(id).do")
                #expect(info.data?["state"]?.stringValue == "finished", "\(id) read idle but is \(info.text)")
            }
            let status = try await agent.call("GET", "/api2/agent/status.do")
            #expect(status.data?["running"]?.intValue == 0 && status.data?["queued"]?.intValue == 0, "\(status.text)")
        }
    }
}
