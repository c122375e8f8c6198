import Foundation

/// A client of the seed interface (DESIGN §2), spoken by an agent and by a central server
/// alike: the CLI's client commands and the central-scheduler calls of drain/resume use it.
public struct SeedClient: Sendable {
    /// A decoded envelope.
    public struct Answer: Sendable {
        public var status: Int
        public var ret: Bool
        public var message: String?
        public var reason: String?
        public var data: JSONValue?
        /// The whole envelope as received (what `--json` prints).
        public var envelope: JSONValue
    }

    /// A transport failure or an answer that is not a seed envelope.
    public struct ClientError: Error, CustomStringConvertible {
        public var description: String
    }

    public let baseURL: URL
    public let token: String?
    let transport: HTTPTransport

    /// A client of the server at `baseURL` (scheme, host, port; a path prefix is kept);
    /// `tls` applies to an `https://` URL.
    public init(baseURL: URL, token: String?, timeout: TimeInterval = 10, tls: ClientTLSSettings = ClientTLSSettings()) {
        self.baseURL = baseURL
        self.token = token
        transport = HTTPTransport(timeout: timeout, tls: tls)
    }

    /// A client of the agent configured by `settings` (loopback when it listens on all
    /// addresses; `https` when it listens with TLS, verified and presenting itself per `tls`).
    public init(settings: AgentSettings, timeout: TimeInterval = 10, tls: ClientTLSSettings = ClientTLSSettings()) {
        let host: String
        if let ip = IPAddress(settings.listen.host), ip.isUnspecified {
            host = ip.bytes.count == 4 ? "127.0.0.1" : "::1"
        } else {
            host = settings.listen.host
        }
        let address = ListenAddress(host: host, port: settings.listen.port)
        let scheme = settings.tls == nil ? "http" : "https"
        self.init(baseURL: URL(string: "\(scheme)://\(address)")!, token: settings.tokens.first, timeout: timeout, tls: tls)
    }

    /// `name` (a job name or task id) percent-encoded so that it stays one path segment;
    /// a name the server refuses still reaches it, and gets its `参数错误`.
    public static func pathSegment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: segmentCharacters) ?? name
    }

    /// The characters of job names and task ids: ASCII letters, digits, `_ . : -`.
    private static let segmentCharacters = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")

    public func get(_ path: String) async throws -> Answer {
        try await send("GET", path, body: nil)
    }

    public func post(_ path: String, json: JSONValue) async throws -> Answer {
        try await send("POST", path, body: Data(json.jsonText.utf8))
    }

    private func send(_ method: String, _ path: String, body: Data?) async throws -> Answer {
        let base = baseURL.absoluteString.hasSuffix("/") ? String(baseURL.absoluteString.dropLast()) : baseURL.absoluteString
        guard let url = URL(string: base + path) else { throw ClientError(description: "bad path \(path)") }
        let reply: HTTPTransport.Reply
        do {
            reply = try await transport.send(method, url, token: token, body: body)
        } catch {
            throw ClientError(description: error.description)
        }
        guard let envelope = JSONValue(parsing: reply.body), let ret = envelope["ret"]?.boolValue else {
            let preview = String(decoding: reply.body.prefix(80), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            throw ClientError(description: "\(url.absoluteString) answered HTTP \(reply.status) without a seed envelope (not JSON: \"\(preview)\")")
        }
        return Answer(status: reply.status, ret: ret, message: envelope["message"]?.stringValue,
                      reason: envelope["reason"]?.stringValue, data: envelope["data"], envelope: envelope)
    }
}
