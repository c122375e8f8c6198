import Foundation
import Synchronization
import Logging
import PostgresNIO

/// The cluster's PostgreSQL client (DESIGN §10): a `PostgresClient` with this agent's small
/// pool, and the errors of its users described in terms an operator can act on.
public struct ClusterDatabase: Sendable {
    /// The client; its `run()` must be running for queries to be served.
    public let client: PostgresClient
    public let settings: ClusterSettings

    public init(settings: ClusterSettings, logger: Logger) {
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        configuration.options.maximumConnections = settings.poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        self.settings = settings
    }

    /// Connects once, outside the pool, and runs `SELECT 1`: a refused connection or a failed
    /// authentication shows at once with its real cause (the pool would keep retrying).
    func probe(logger: Logger) async throws {
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            try await connection.query("SELECT 1", logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Runs `body` with the client running, and stops the client after: for commands that
    /// talk to the database once (`qagent cluster status`, tests). Once per value: a
    /// `PostgresClient` runs only once.
    public func withRunningClient<Result: Sendable>(_ body: @Sendable (PostgresClient) async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Runs `body`, failing with ``ClusterError`` when it takes longer than `seconds` (a
    /// database that accepts connections but never answers must not hang a start, nor a
    /// request). At the deadline `body` is cancelled and *not waited for*: a query stuck in
    /// the client (a connection attempt to a stopped server) must not hold the answer past
    /// the deadline; it ends on its own.
    @discardableResult
    static func withTimeout<Result: Sendable>(
        _ seconds: Int, what: String, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let outcome = FirstOutcome<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.wait(with: continuation)
                let work = Task {
                    let result: Swift.Result<Result, any Error>
                    do { result = .success(try await body()) } catch { result = .failure(error) }
                    outcome.settle(result)
                }
                let deadline = Task {
                    guard (try? await Task.sleep(for: .seconds(seconds))) != nil else { return }
                    outcome.settle(.failure(ClusterError("\(what): no answer within \(seconds) s")))
                }
                outcome.whenSettled {
                    work.cancel()
                    deadline.cancel()
                }
            }
        } onCancel: {
            outcome.settle(.failure(CancellationError()))
        }
    }
}

/// The first of a body's result, its deadline and its caller's cancellation: resumes the
/// waiting caller once, then runs the clean-up (cancel the others).
private final class FirstOutcome<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var early: Result<Value, any Error>?
        var settled = false
        var cleanUp: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func wait(with continuation: CheckedContinuation<Value, any Error>) {
        let early: Result<Value, any Error>? = state.withLock { state in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func whenSettled(_ cleanUp: @escaping @Sendable () -> Void) {
        let settled = state.withLock { state in
            if !state.settled { state.cleanUp = cleanUp }
            return state.settled
        }
        if settled { cleanUp() }
    }

    func settle(_ result: Result<Value, any Error>) {
        let (continuation, cleanUp): (CheckedContinuation<Value, any Error>?, (@Sendable () -> Void)?) = state.withLock { state in
            guard !state.settled else { return (nil, nil) }
            state.settled = true
            if state.continuation == nil { state.early = result }
            defer { state.continuation = nil; state.cleanUp = nil }
            return (state.continuation, state.cleanUp)
        }
        continuation?.resume(with: result)
        cleanUp?()
    }
}

/// A cluster-mode failure, described for an operator (never with the password).
public struct ClusterError: Error, CustomStringConvertible, Equatable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }

    /// Describes a database error of `operation` against `settings`' database: the server's
    /// message and SQLSTATE, a refused or failed connection, an authentication failure.
    static func describing(_ error: any Error, _ operation: String, settings: ClusterSettings) -> ClusterError {
        if let known = error as? ClusterError { return ClusterError("\(operation) on \(settings.displayURL): \(known.description)") }
        if let transaction = error as? PostgresTransactionError,
           let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError {
            return describing(cause, operation, settings: settings)
        }
        let target = settings.displayURL
        guard let psql = error as? PSQLError else { return ClusterError("\(operation) on \(target): \(error)") }
        if let info = psql.serverInfo {
            let message = info[.message] ?? "error"
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return ClusterError("\(operation) on \(target): \(message)\(state)")
        }
        switch psql.code {
        case .connectionError:
            let detail = psql.underlying.map { "\($0)" } ?? ""
            // NIO's connection errors are long; the socket's own reason is what an operator needs.
            let known = ["Connection refused", "No route to host", "Network is unreachable", "Connection timed out", "Host is down",
                         "Name or service not known", "nodename nor servname"]
            let cause = known.first { detail.contains($0) }?.lowercased() ?? (detail.isEmpty ? "connection failed" : detail)
            return ClusterError("\(operation) on \(target): cannot connect: \(cause)")
        case .authMechanismRequiresPassword:
            return ClusterError("\(operation) on \(target): the server asks for a password: set password_file or QAGENT_DB_PASSWORD")
        case .serverClosedConnection, .uncleanShutdown:
            return ClusterError("\(operation) on \(target): the server closed the connection")
        default:
            return ClusterError("\(operation) on \(target): \(psql.code)")
        }
    }
}
