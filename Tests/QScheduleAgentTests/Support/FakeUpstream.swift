import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import NIOSSL
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
@testable import QScheduleAgent

/// What the fake report receiver does with the next POST.
enum ReceiverMode: Sendable, Equatable {
    /// `{"ret":true,"message":"操作成功"}`; the reports are recorded.
    case accept
    /// HTTP `status` with an envelope; nothing recorded.
    case status(Int)
    /// HTTP 429 with `Retry-After: seconds`.
    case tooMany(retryAfter: Int)
    /// HTTP 200 with a body that is not JSON.
    case garbage
    /// `{"ret":false}` (the receiver refuses).
    case refuse
    /// Waits `seconds` before accepting (longer than the agent's timeout = a timeout there).
    case slow(seconds: Double)
}

/// The shared, recorded state of a fake upstream: a report receiver and a central server
/// speaking the seed's workers endpoints. Survives the server being stopped and restarted.
final class FakeUpstreamState: Sendable {
    struct Recorded: Sendable {
        var reports: [JSONValue] = []
        /// Alert events (`{"alerts":[...]}` bodies), and bodies that mixed kinds (must stay 0).
        var alerts: [JSONValue] = []
        var mixedBodies = 0
        var heartbeats: [JSONValue] = []
        var reportPosts = 0
        var attemptTimes: [ContinuousClock.Instant] = []
        var badTokens = 0
        var workerCalls: [(job: String, workers: String)] = []
    }

    let recorded = Mutex(Recorded())
    let mode = Mutex(ReceiverMode.accept)
    /// Answer message of `POST /api2/workers/state.do` per job; absent = `操作成功`.
    let workersAnswer = Mutex<[String: String]>([:])
    /// `data` of `GET /api2/workers/$job.do`; absent = `job不存在`.
    let workersList = Mutex<[String: JSONValue]>([:])

    var reports: [JSONValue] { recorded.withLock { $0.reports } }
    var alerts: [JSONValue] { recorded.withLock { $0.alerts } }
    var reportIDs: [String] { reports.compactMap { $0["taskId"]?.stringValue } }
    var heartbeats: [JSONValue] { recorded.withLock { $0.heartbeats } }
    var reportPosts: Int { recorded.withLock { $0.reportPosts } }
    var workerCalls: [(job: String, workers: String)] { recorded.withLock { $0.workerCalls } }
}

/// A real HTTP server on loopback playing the report receiver and the central scheduler.
final class FakeUpstream: Sendable {
    let state: FakeUpstreamState
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// `https` when started with TLS.
    let scheme: String
    var reportURL: String { "\(scheme)://127.0.0.1:\(port)/api2/agent/report.do" }
    var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    private init(state: FakeUpstreamState, port: Int, scheme: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.state = state
        self.port = port
        self.scheme = scheme
        self.group = group
        self.task = task
    }

    /// Starts listening on `port` (0 = any free one) with `state`; HTTPS with `tls`.
    static func start(port: Int = 0, state: FakeUpstreamState = FakeUpstreamState(), tls: TLSConfiguration? = nil) async throws -> FakeUpstream {
        let router = Router()
        router.post("/api2/agent/report.do") { request, _ -> Response in
            try await Self.receive(request, state: state)
        }
        router.post("/api2/workers/state.do") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = JSONValue(parsing: Data(body.readableBytesView)) ?? .null
            let job = json["jobName"]?.stringValue ?? ""
            state.recorded.withLock { $0.workerCalls.append((job, json["workers"]?.stringValue ?? json["workers"]?.jsonText ?? "")) }
            guard request.headers[HTTPField.Name("Q-Server-Token")!] == testToken else { return envelope(false, SeedMessage.authFailed) }
            let message = state.workersAnswer.withLock { $0[job] } ?? SeedMessage.ok
            return envelope(message == SeedMessage.ok, message)
        }
        router.get("/api2/workers/{job}") { _, context -> Response in
            let job = String((context.parameters.get("job") ?? "").dropLast(3))
            guard let list = state.workersList.withLock({ $0[job] }) else { return envelope(false, SeedMessage.jobNotFound) }
            return json(.object(["ret": .bool(true), "data": list]))
        }
        // A server that accepts the connection and then says nothing for a long while.
        router.get("/slow/**") { _, _ -> Response in
            try await Task.sleep(for: .seconds(5))
            return envelope(true, SeedMessage.ok)
        }
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: testLogger("fake-upstream"))
        let group = ServiceGroup(configuration: .init(services: [app], logger: testLogger("fake-upstream")))
        let task = Task {
            defer { portContinuation.finish() }  // a failed bind must not leave `start` waiting
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            _ = try? await task.value
            throw FakeUpstreamError(port: port)
        }
        return FakeUpstream(state: state, port: bound, scheme: tls == nil ? "http" : "https", group: group, task: task)
    }

    /// A loopback port with nothing listening: a receiver that is down, and can be started
    /// later on that port. Chosen below the kernel's ephemeral range (32768-60999), so no
    /// port-0 listener of a concurrent test can take it in the meantime.
    static func downPort() async throws -> Int {
        for _ in 0..<50 {
            let candidate = Int.random(in: 21_000..<32_000)
            guard let probe = try? await start(port: candidate) else { continue }
            await probe.stop()
            return candidate
        }
        throw FakeUpstreamError(port: 0)
    }

    /// Stops listening (connections are refused afterwards).
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    private static func receive(_ request: Request, state: FakeUpstreamState) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 << 20)
        let mode = state.mode.withLock { $0 }
        state.recorded.withLock { $0.attemptTimes.append(.now) }
        guard request.headers[HTTPField.Name("Q-Server-Token")!] == testToken else {
            state.recorded.withLock { $0.badTokens += 1 }
            return envelope(false, SeedMessage.authFailed)
        }
        let json = JSONValue(parsing: Data(body.readableBytesView)) ?? .null
        if let heartbeat = json["heartbeat"] {
            state.recorded.withLock { $0.heartbeats.append(heartbeat) }
            return envelope(true, SeedMessage.ok)
        }
        state.recorded.withLock { $0.reportPosts += 1 }
        switch mode {
        case .accept:
            break
        case .status(let code):
            return Response(status: .init(code: code), body: .init(byteBuffer: ByteBuffer(string: #"{"ret":false,"message":"boom"}"#)))
        case .tooMany(let seconds):
            var headers = HTTPFields()
            headers[.retryAfter] = String(seconds)
            return Response(status: .tooManyRequests, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        case .garbage:
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "<html>proxy error</html>")))
        case .refuse:
            return envelope(false, SeedMessage.operationFailed)
        case .slow(let seconds):
            try await Task.sleep(for: .seconds(seconds))
        }
        let reports = json["reports"]?.arrayValue ?? []
        let alerts = json["alerts"]?.arrayValue ?? []
        state.recorded.withLock {
            $0.reports += reports
            $0.alerts += alerts
            if json["reports"] != nil, json["alerts"] != nil { $0.mixedBodies += 1 }
        }
        return envelope(true, SeedMessage.ok)
    }

    static func envelope(_ ret: Bool, _ message: String) -> Response {
        json(.object(["ret": .bool(ret), "message": .string(message)]))
    }

    static func json(_ value: JSONValue) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: value.jsonText)))
    }
}

struct FakeUpstreamError: Error, CustomStringConvertible {
    var port: Int
    var description: String { "the fake upstream could not listen on 127.0.0.1:\(port)" }
}
