import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Outbound HTTP for the reporter, the central-scheduler client and the CLI: one URLSession
/// (libcurl on Linux) with a bounded wait, and errors an operator can act on.
public struct HTTPTransport: Sendable {
    /// A received answer, whatever its status.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        /// A header by case-insensitive name.
        public func header(_ name: String) -> String? {
            headers.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
    }

    /// Why no answer was received.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Nothing listens there (connection refused) or the host is unreachable.
        case refused(String)
        /// No connection, or no data, within the timeout.
        case timedOut(String)
        /// Anything else the transport reported (DNS, TLS, reset).
        case other(String)

        public var description: String {
            switch self {
            case .refused(let url): return "connection refused by \(url)"
            case .timedOut(let url): return "no answer from \(url) in time"
            case .other(let text): return text
            }
        }
    }

    /// Seconds allowed for connecting and for each wait on data (the request's timeout, an
    /// idle timer in URLSession).
    public var timeout: TimeInterval

    /// One session per timeout value, for the life of the process. URLSession on Linux takes
    /// the idle timeout from the session's configuration (a request's own `timeoutInterval`
    /// is not applied), hence one per value; and a URLSession (a libcurl multi handle driven by
    /// dispatch sources) that is deallocated, or a transfer cancelled mid-flight, has been
    /// seen to crash libdispatch, so sessions are never dropped and transfers never
    /// cancelled: every exchange ends by itself within its timeouts. The few timeout values
    /// come from configuration and options, so the cache stays small.
    private static let sessions = Mutex<[TimeInterval: URLSession]>([:])

    private static func session(timeout: TimeInterval) -> URLSession {
        sessions.withLock { sessions in
            if let session = sessions[timeout] { return session }
            let configuration = URLSessionConfiguration.ephemeral
            configuration.timeoutIntervalForRequest = timeout
            configuration.timeoutIntervalForResource = timeout * 2
            configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
            let session = URLSession(configuration: configuration)
            sessions[timeout] = session
            return session
        }
    }

    /// A transport whose exchanges give up after `timeout` seconds of silence.
    public init(timeout: TimeInterval = 10) {
        self.timeout = timeout
    }

    /// Sends one request; `token` goes in `Q-Server-Token`, `body` as JSON, then `headers`.
    public func send(_ method: String, _ url: URL, token: String?, body: Data? = nil, headers: [String: String] = [:]) async throws(Failure) -> Reply {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let token { request.setValue(token, forHTTPHeaderField: "Q-Server-Token") }
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        request.setValue("qagent/\(AgentVersion.current)", forHTTPHeaderField: "User-Agent")
        let data: Data
        let response: URLResponse
        do {
            // Unstructured on purpose: a cancelled caller stops waiting only when the transfer
            // ends (bounded by `timeout`), the transfer itself is never cancelled.
            let (request, session) = (request, Self.session(timeout: timeout))
            (data, response) = try await Task { try await session.data(for: request) }.value
        } catch let error as URLError {
            switch error.code {
            case .cannotConnectToHost:
                throw .refused(url.absoluteString)
            case .timedOut:
                throw .timedOut(url.absoluteString)
            default:
                throw .other("cannot reach \(url.absoluteString): \(error.localizedDescription)")
            }
        } catch {
            throw .other("cannot reach \(url.absoluteString): \(error.localizedDescription)")
        }
        let http = response as? HTTPURLResponse
        var headers: [String: String] = [:]
        for (key, value) in http?.allHeaderFields ?? [:] {
            if let key = key as? String, let value = value as? String { headers[key] = value }
        }
        return Reply(status: http?.statusCode ?? 0, headers: headers, body: data)
    }
}
