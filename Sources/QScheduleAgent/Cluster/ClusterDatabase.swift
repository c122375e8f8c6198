import Foundation
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
    /// database that accepts connections but never answers must not hang a start).
    @discardableResult
    static func withTimeout<Result: Sendable>(
        _ seconds: Int, what: String, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw ClusterError("\(what): no answer within \(seconds) s")
            }
            return result
        }
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
