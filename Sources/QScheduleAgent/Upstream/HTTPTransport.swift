import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Outbound HTTP and HTTPS for the reporter, the central-scheduler client, cluster peers and
/// the CLI: AsyncHTTPClient with a bounded wait, TLS from ``ClientTLSSettings`` (a private CA,
/// a client certificate for mutual TLS), and errors an operator can act on.
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
        /// No connection, or no whole answer, within the timeout.
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

    /// Seconds allowed for connecting and for each wait on data; the whole exchange gets
    /// twice that at most.
    public var timeout: TimeInterval
    /// How `https://` servers are verified and which client certificate is presented.
    public var tls: ClientTLSSettings

    /// The largest answer read; a larger one is an error (nothing the agent asks for is
    /// near it: task log chunks are 1 MiB at most).
    static let maxAnswerBytes = 64 << 20

    /// A transport whose exchanges give up after `timeout` seconds of silence.
    public init(timeout: TimeInterval = 10, tls: ClientTLSSettings = ClientTLSSettings()) {
        self.timeout = timeout
        self.tls = tls
    }

    /// One client per TLS setting, for the life of the process (they pool connections).
    /// ``rereadCertificates()`` drops those built from files, so the next exchange reads the
    /// files again; a dropped client is shut down once its exchanges can have ended.
    private static let clients = Mutex<[ClientTLSSettings: HTTPClient]>([:])

    private static func client(for tls: ClientTLSSettings) throws(Failure) -> HTTPClient {
        try clients.withLock { clients throws(Failure) in
            if let client = clients[tls] { return client }
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: try tlsConfiguration(tls),
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(60), read: .seconds(3600)),
                decompression: .disabled)
            // A refused connection fails the exchange at once (the callers have their own
            // retries and backoff), instead of being retried until the deadline.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.connectionPool.idleTimeout = .seconds(30)
            configuration.httpVersion = .http1Only
            let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
            clients[tls] = client
            return client
        }
    }

    /// The client side of TLS for `settings`: the system's trust store unless `caFile`.
    static func tlsConfiguration(_ settings: ClientTLSSettings) throws(Failure) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        do {
            if let caFile = settings.caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            if let certificate = settings.certificateFile, let key = settings.keyFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
        } catch {
            let files = [settings.caFile, settings.certificateFile, settings.keyFile].compactMap { $0 }.map { "\"\($0)\"" }
            throw .other("cannot load the TLS files \(files.joined(separator: ", ")): \(error)")
        }
        return configuration
    }

    /// A reload: clients whose CA or certificate come from files are rebuilt on their next
    /// use, reading the files again (rotated certificates); the old ones finish what they
    /// carry and are shut down.
    public static func rereadCertificates() {
        let dropped = clients.withLock { clients in
            let fromFiles = clients.filter { !$0.key.isDefault }
            for key in fromFiles.keys { clients[key] = nil }
            return Array(fromFiles.values)
        }
        guard !dropped.isEmpty else { return }
        Task {
            // Longer than any exchange's deadline (2 x the largest timeout, 3600 s).
            try? await Task.sleep(for: .seconds(7200))
            for client in dropped { try? await client.shutdown() }
        }
    }

    /// Sends one request; `token` goes in `Q-Server-Token`, `body` as JSON, then `headers`.
    public func send(_ method: String, _ url: URL, token: String?, body: Data? = nil, headers: [String: String] = [:]) async throws(Failure) -> Reply {
        let client = try Self.client(for: tls)
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let token { request.headers.replaceOrAdd(name: "Q-Server-Token", value: token) }
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        }
        request.headers.replaceOrAdd(name: "User-Agent", value: "qagent/\(AgentVersion.current)")
        let deadline = TimeAmount.milliseconds(Int64(timeout * 2000))
        do {
            let response = try await client.execute(request, timeout: deadline)
            let data = try await response.body.collect(upTo: Self.maxAnswerBytes)
            var fields: [String: String] = [:]
            for (name, value) in response.headers {
                fields[name] = fields[name].map { "\($0), \(value)" } ?? value
            }
            return Reply(status: Int(response.status.code), headers: fields, body: Data(buffer: data))
        } catch {
            throw Self.failure(error, url: url)
        }
    }

    /// What a transport error means to an operator.
    static func failure(_ error: any Error, url: URL) -> Failure {
        let address = url.absoluteString
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                return .timedOut(address)
            default:
                break
            }
        }
        if isRefusal(error) { return .refused(address) }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return .other("TLS with \(address) failed: \(tlsProblem(error, host: url.host ?? address))")
        }
        if error is NIOTooManyBytesError {
            return .other("\(address) answered more than \(maxAnswerBytes) bytes")
        }
        return .other("cannot reach \(address): \(error)")
    }

    /// A TLS failure in an operator's words, the library's own code after it.
    static func tlsProblem(_ error: any Error, host: String) -> String {
        let text = "\(error)"
        let known: [(code: String, meaning: String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not signed by a trusted CA (ca_file, or --cacert)"),
            ("failedToValidateHostname", "the server's certificate does not name \(host) (subjectAltName)"),
            ("CERTIFICATE_REQUIRED", "the server requires a client certificate (mutual TLS: cert_file and key_file, or --cert and --key)"),
            ("UNKNOWN_CA", "the server does not trust the client certificate's CA"),
            ("BAD_CERTIFICATE", "the server refused the client certificate"),
            ("WRONG_VERSION_NUMBER", "the server does not speak TLS there (an http:// listener?)"),
        ]
        guard let match = known.first(where: { text.contains($0.code) }) else { return text }
        return "\(match.meaning) [\(match.code)]"
    }

    /// Whether `error` says nothing listens there (or the host cannot be reached).
    private static func isRefusal(_ error: any Error) -> Bool {
        let unreachable: Set<Int32> = [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH]
        if let error = error as? IOError { return unreachable.contains(error.errnoCode) }
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.contains { isRefusal($0.error) }
        }
        return false
    }
}
