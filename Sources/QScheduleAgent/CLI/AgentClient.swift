import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small client of an agent's (or a central server's) seed interface, for the CLI.
struct AgentClient: Sendable {
    /// A decoded envelope.
    struct Answer: Sendable {
        var status: Int
        var ret: Bool
        var message: String?
        var reason: String?
        var data: JSONValue?
    }

    struct ClientError: Error, CustomStringConvertible {
        var description: String
    }

    let baseURL: URL
    let token: String?
    let timeout: TimeInterval

    init(baseURL: URL, token: String?, timeout: TimeInterval = 10) {
        self.baseURL = baseURL
        self.token = token
        self.timeout = timeout
    }

    /// A client of the agent configured by `settings` (loopback when it listens on all addresses).
    init(settings: AgentSettings) {
        let host: String
        if let ip = IPAddress(settings.listen.host), ip.isUnspecified {
            host = "127.0.0.1"
        } else {
            host = settings.listen.host
        }
        let address = ListenAddress(host: host, port: settings.listen.port)
        self.init(baseURL: URL(string: "http://\(address)")!, token: settings.tokens.first)
    }

    func get(_ path: String) async throws -> Answer {
        try await send("GET", path, body: nil)
    }

    func post(_ path: String, json: JSONValue) async throws -> Answer {
        try await send("POST", path, body: Data(json.jsonText.utf8))
    }

    private func send(_ method: String, _ path: String, body: Data?) async throws -> Answer {
        guard let url = URL(string: path, relativeTo: baseURL) else { throw ClientError(description: "bad path \(path)") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        if let token { request.setValue(token, forHTTPHeaderField: "Q-Server-Token") }
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw ClientError(description: "cannot reach \(url.absoluteString): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard let object = JSONValue(parsing: data)?.objectValue, let ret = object["ret"]?.boolValue else {
            throw ClientError(description: "\(url.absoluteString) answered HTTP \(status) without a seed envelope")
        }
        return Answer(status: status, ret: ret, message: object["message"]?.stringValue, reason: object["reason"]?.stringValue, data: object["data"])
    }
}
