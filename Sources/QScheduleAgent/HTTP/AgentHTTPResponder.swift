import Foundation
import HTTPTypes
import Hummingbird

/// The agent's HTTP interface: the seven seed endpoints plus health, in one responder. In
/// cluster mode the seed endpoints answer for the whole cluster (``ClusterSeedAPI``).
///
/// Order of checks for every request: route (404/405), token for `/api2` (`授权失败`),
/// body size (413), then the endpoint's own validation. Nothing a client sends produces a
/// 500: unexpected errors become a `ret:false` envelope.
struct AgentHTTPResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    /// What a route handler gets: the captured path segment, the parsed JSON body, the query.
    struct Call: Sendable {
        var captured: String?
        /// The body parsed as JSON; `nil` when absent or not JSON.
        var body: JSONValue?
        /// Query parameters (first value of each name).
        var query: [String: String] = [:]
        /// The `Q-Server-Token` sent (for forwarding to a peer in cluster mode).
        var token: String?
        /// Sent by a peer agent with ``AgentHTTPResponder/forwardedHeader``: answer from this host's own state.
        var forwarded = false
    }

    typealias Handler = @Sendable (SeedAPI, Call) async -> Response

    static let tokenHeader = HTTPField.Name("Q-Server-Token")!
    /// Marks a request a cluster peer forwarded to the worker holding a task: answered from
    /// this host's state, never forwarded again.
    static let forwardedHeader = HTTPField.Name("Q-Agent-Forwarded")!

    let api: SeedAPI
    let tokens: TokenSet
    let maxBodyBytes: Int
    let routes: RouteTable<Handler>

    init(api: SeedAPI, tokens: [String], maxBodyBytes: Int, metricsRequireToken: Bool = false) {
        self.api = api
        self.tokens = TokenSet(tokens)
        self.maxBodyBytes = maxBodyBytes
        self.routes = Self.makeRoutes(metricsRequireToken: metricsRequireToken)
    }

    /// Every route the agent serves; `docs/openapi.yaml` describes the same list.
    /// `metricsRequireToken`: `[agent] metrics_token` (off by default, like node_exporter).
    static func makeRoutes(metricsRequireToken: Bool = false) -> RouteTable<Handler> {
        var table = RouteTable<Handler>()
        table.add(.get, "/healthz", requiresToken: false) { api, _ in api.health() }
        table.add(.get, "/metrics", requiresToken: metricsRequireToken) { api, _ in await api.metricsText() }
        table.add(.get, "/readyz", requiresToken: false) { api, _ in await api.ready() }
        table.add(.get, "/api/check/{}.do", requiresToken: false) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.check(ip: call.captured) }
            return await api.check(ip: call.captured)
        }
        table.add(.post, "/api2/jobs/on.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.setJobs(enabled: true, body: call.body) }
            return await api.setJobs(enabled: true, body: call.body)
        }
        table.add(.post, "/api2/jobs/off.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.setJobs(enabled: false, body: call.body) }
            return await api.setJobs(enabled: false, body: call.body)
        }
        table.add(.get, "/api2/jobs.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.jobs() }
            return await api.jobs()
        }
        table.add(.get, "/api2/tasks.do", requiresToken: true) { api, call in await api.listTasks(call.query) }
        table.add(.get, "/api2/jobs/{}.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.jobInfo(name: call.captured) }
            return await api.jobInfo(name: call.captured)
        }
        table.add(.post, "/api2/tasks.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.dispatch(body: call.body) }
            return await api.dispatch(body: call.body)
        }
        table.add(.post, "/api2/workers/state.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.setWorkers(body: call.body) }
            return await api.setWorkers(body: call.body)
        }
        table.add(.get, "/api2/workers/{}.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.workers(job: call.captured) }
            return await api.workers(job: call.captured)
        }
        table.add(.get, "/api2/agent/status.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.status() }
            return await api.status()
        }
        table.add(.post, "/api2/agent/drain.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.drain(body: call.body) }
            return await api.drain(body: call.body)
        }
        table.add(.post, "/api2/agent/reload.do", requiresToken: true) { api, _ in await api.reload() }
        table.add(.post, "/api2/agent/resume.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.resume() }
            return await api.resume()
        }
        table.add(.post, "/api2/tasks/kill.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.killTask(body: call.body, token: call.token) }
            return await api.killTask(body: call.body)
        }
        table.add(.get, "/api2/tasks/{}.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) { return await cluster.taskInfo(id: call.captured, token: call.token) }
            return await api.taskInfo(id: call.captured)
        }
        table.add(.get, "/api2/tasks/{}/log.do", requiresToken: true) { api, call in
            if let cluster = api.clusterWide(call) {
                return await cluster.taskLog(id: call.captured, offset: call.query["offset"], token: call.token)
            }
            return await api.taskLog(id: call.captured, offset: call.query["offset"])
        }
        return table
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let (pattern, response) = await answer(request)
        // Methods outside the route table count as "other": the label stays bounded.
        let method = ["GET", "POST"].contains(request.method.rawValue) ? request.method.rawValue : "other"
        api.metrics.httpRequest(method: method, route: pattern, status: response.status.code)
        return response
    }

    /// The response, and the route pattern it was counted under (`unmatched` for 404/405).
    private func answer(_ request: Request) async -> (String, Response) {
        let route: RouteTable<Handler>.Route
        let captured: String?
        switch routes.match(method: request.method, path: request.uri.path) {
        case .notFound:
            return ("unmatched", EnvelopeResponse.failure("no such endpoint", reason: FailureReason.notFound, status: .notFound))
        case .methodNotAllowed(let allowed):
            var headers = HTTPFields()
            headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            return ("unmatched", EnvelopeResponse.failure(
                "method not allowed", reason: FailureReason.methodNotAllowed, status: .methodNotAllowed, headers: headers))
        case .found(let found, let value):
            route = found
            captured = value
        }
        if route.requiresToken, !tokens.accepts(request.headers[Self.tokenHeader]) {
            api.refusedTokens.record(route: route.pattern, tokenSent: request.headers[Self.tokenHeader] != nil)
            return (route.pattern, EnvelopeResponse.failure(SeedMessage.authFailed))
        }
        var body: JSONValue?
        if route.method == .post {
            if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBodyBytes {
                return (route.pattern, Self.tooLarge(maxBodyBytes))
            }
            let bytes: ByteBuffer
            do {
                bytes = try await request.body.collect(upTo: maxBodyBytes)
            } catch {
                return (route.pattern, Self.tooLarge(maxBodyBytes))
            }
            body = JSONValue(parsing: Data(bytes.readableBytesView))
        }
        var query: [String: String] = [:]
        for (name, value) in request.uri.queryParameters where query[String(name)] == nil {
            query[String(name)] = String(value)
        }
        let call = Call(
            captured: captured, body: body, query: query, token: request.headers[Self.tokenHeader],
            forwarded: request.headers[Self.forwardedHeader] != nil)
        return (route.pattern, await route.handler(api, call))
    }

    private static func tooLarge(_ limit: Int) -> Response {
        EnvelopeResponse.failure(SeedMessage.badRequest, reason: FailureReason.bodyTooLarge, status: .contentTooLarge)
    }
}
