import Foundation
import Testing
@testable import QScheduleAgent

/// What the HTTP layer does with clients that misbehave, against the real binary.
@Suite("End to end: HTTP connections bounded in time and number, every refusal an envelope", .serialized)
struct HTTPConnectionTests {
    static let limits = "idle_timeout = 1\nread_timeout = 1\nmax_connections = 8"

    @Test("slowloris: a head trickled byte by byte is cut at idle_timeout; the agent keeps answering")
    func slowHeaders() async throws {
        try await AgentProcess.with(jobs: "", agentExtra: Self.limits) { agent in
            let connection = try RawConnection(port: agent.port)
            connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
            var closed = false
            for index in 0..<40 where !closed {
                // One more header byte every 250 ms: activity, but never a whole head.
                closed = !connection.send("X-\(index): y\r\n") || connection.readUntilClosed(seconds: 0.25) != nil
            }
            #expect(closed, "a trickled head held the connection for 10 s")
            #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
        }
    }

    @Test("half a body: 408 with the envelope after read_timeout, then closed; nothing journaled")
    func halfBody() async throws {
        // idle_timeout also cuts a request whose bytes stop for that long: kept longer here, so
        // that read_timeout is what ends the request.
        let limits = "idle_timeout = 30\nread_timeout = 1"
        try await AgentProcess.with(jobs: "[[job]]\nname = \"e.j\"\ncommand = [\"/bin/true\"]\n", agentExtra: limits) { agent in
            let connection = try RawConnection(port: agent.port)
            connection.send("POST /api2/tasks.do HTTP/1.1\r\nHost: x\r\nQ-Server-Token: \(testToken)\r\nContent-Length: 100\r\n\r\n{\"job\":\"e.j\"")
            let answer = try #require(connection.readUntilClosed(seconds: 15), "not closed")
            #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(answer)")
            #expect(answer.hasSuffix("\r\n\r\n" + #"{"message":"参数错误","reason":"request_timeout","ret":false}"#), "\(answer)")
            #expect(try await agent.call("GET", "/api2/jobs/e.j.do").data?["lastRun"] == .int(0))
            // A request answered before its body arrived (wrong token) gets no second answer: only the close.
            let refused = try RawConnection(port: agent.port)
            refused.send("POST /api2/tasks.do HTTP/1.1\r\nHost: x\r\nQ-Server-Token: wrong\r\nContent-Length: 100\r\n\r\n{")
            let text = try #require(refused.readUntilClosed(seconds: 15), "not closed")
            #expect(text.components(separatedBy: "HTTP/1.1 ").count == 2, "\(text)")
            #expect(text.contains("授权失败"))
        }
    }

    @Test("idle keep-alive: closed after idle_timeout; a busy keep-alive connection is not")
    func idleKeepAlive() async throws {
        try await AgentProcess.with(jobs: "", agentExtra: Self.limits) { agent in
            let connection = try RawConnection(port: agent.port)
            for _ in 0..<6 {
                // Requests 300 ms apart keep the connection in use for longer than idle_timeout.
                connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try #require(connection.readResponse(seconds: 10))
                #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(connection.readUntilClosed(seconds: 15) != nil, "an idle keep-alive connection stayed open")
        }
    }

    @Test("max_connections: beyond it a connection is closed at once, without a token; places come back when connections close")
    func connectionCap() async throws {
        try await AgentProcess.with(jobs: "", agentExtra: "max_connections = 8\nidle_timeout = 60") { agent in
            var held = try (0..<8).map { _ in try RawConnection(port: agent.port) }
            try await Task.sleep(for: .milliseconds(300))
            let extra = try RawConnection(port: agent.port)
            extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(extra.readUntilClosed(seconds: 10) == "", "the ninth connection was served")
            held.removeLast(2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
            _ = held
        }
    }

    static let malformed: [(String, [UInt8], String)] = [
        ("bad Content-Length", Array("POST /api2/tasks.do HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".utf8), "400 Bad Request"),
        ("duplicate Content-Length", Array("POST /api2/tasks.do HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".utf8), "400 Bad Request"),
        ("unknown method", Array("FROB /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "400 Bad Request"),
        ("control byte in the path", Array("GET /hea\u{01}lthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "400 Bad Request"),
        ("space in the path", Array("GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "400 Bad Request"),
        ("not HTTP at all (a TLS hello)", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03], "400 Bad Request"),
        ("header over the limit", Array(("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 120_000) + "\r\n\r\n").utf8), "431 Request Header Fields Too Large"),
        ("URI over the limit", Array(("GET /" + String(repeating: "a", count: 120_000) + " HTTP/1.1\r\nHost: x\r\n\r\n").utf8), "431 Request Header Fields Too Large"),
    ]

    @Test("what the HTTP parser refuses is answered with the ret:false envelope, then closed")
    func malformedRequests() async throws {
        try await AgentProcess.with(jobs: "") { agent in
            for (name, bytes, status) in Self.malformed {
                let connection = try RawConnection(port: agent.port)
                connection.send(bytes)
                let answer = try #require(connection.readUntilClosed(seconds: 10), "\(name): not closed")
                let reason = status.hasPrefix("431") ? "headers_too_large" : "malformed_request"
                #expect(answer.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(name): \(answer.prefix(200))")
                #expect(answer.contains("Content-Type: application/json; charset=utf-8\r\n"), "\(name)")
                #expect(answer.hasSuffix(#"{"message":"参数错误","reason":"\#(reason)","ret":false}"#), "\(name): \(answer.prefix(300))")
            }
            #expect(try await agent.call("GET", "/healthz", token: nil).status == .ok)
        }
    }
}
