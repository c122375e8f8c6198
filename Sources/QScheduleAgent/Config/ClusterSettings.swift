import Foundation

/// The `[cluster]` table (DESIGN §10): the agents of a fleet share one PostgreSQL database.
public struct ClusterSettings: Sendable, Equatable {
    /// Database server host (from `database`).
    public var host: String
    /// Database server port (from `database`, default 5432).
    public var port: Int
    /// Database user (from `database`).
    public var username: String
    /// Database name (from `database`).
    public var database: String
    /// From `password_file` or `QAGENT_DB_PASSWORD`; never from the URL, so it stays out of
    /// configuration files shipped by deploy tooling and out of every message.
    public var password: String?
    /// Connections this agent holds at most (1,000 agents must fit one server).
    public var poolSize: Int = 2
    /// Seconds between heartbeats.
    public var heartbeatInterval: Int = 3
    /// Seconds without a heartbeat after which a worker counts as dead.
    public var deadAfter: Int = 15
    /// `ca_file`: the CA(s) trusted for peers' certificates when the agents listen with TLS
    /// (`nil` = the system's trust store). Peers are asked with this agent's own `tls_cert`
    /// and `tls_key` as the client certificate.
    public var peerCAFile: String?

    public init(host: String, port: Int = 5432, username: String, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.database = database
    }

    /// `postgresql://user@host:port/database`, without the password: for messages.
    public var displayURL: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(username)@\(hostPart):\(port)/\(database)"
    }

    /// Parses `postgresql://user@host[:port]/database` (or `postgres://`). Returns the problem
    /// when the URL cannot be used.
    static func parse(_ text: String) -> Result<ClusterSettings, ClusterURLProblem> {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased(), scheme == "postgresql" || scheme == "postgres" else {
            return .failure(.init("must be a postgresql://user@host:port/database URL"))
        }
        guard components.password == nil else {
            return .failure(.init("must not hold a password: put it in password_file or QAGENT_DB_PASSWORD"))
        }
        guard let user = components.user, !user.isEmpty else { return .failure(.init("names no user (postgresql://USER@host/database)")) }
        guard let host = components.host, !host.isEmpty else { return .failure(.init("names no host")) }
        let name = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !name.isEmpty, !name.contains("/") else { return .failure(.init("names no database (postgresql://user@host/DATABASE)")) }
        if let items = components.queryItems, let first = items.first {
            return .failure(.init("has an unsupported parameter \"\(first.name)\""))
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { return .failure(.init("has a port outside 1-65535")) }
        let trimmedHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return .success(ClusterSettings(host: trimmedHost, port: port, username: user, database: name))
    }
}

extension ClusterSettings {
    /// The least `dead_after` that leaves a worker room to fence itself (see ``ClusterLease``).
    static func minimumDeadAfter(heartbeatInterval: Int, killGrace: Int) -> Int {
        2 * heartbeatInterval + killGrace
    }
}

/// Why a `[cluster] database` URL was refused.
struct ClusterURLProblem: Error {
    let text: String
    init(_ text: String) { self.text = text }
}

extension ConfigLoader {
    /// The `[cluster]` table, validated; `nil` when absent.
    static func parseCluster(
        _ top: TableReader, fileName: String, baseDirectory: String, environment: [String: String], locator: TOMLKeyLocator, killGrace: Int,
        strict: Bool = false, warnings: inout [String]
    ) throws -> ClusterSettings? {
        guard let table = try top.table("cluster") else { return nil }
        let reader = TableReader(table: table, tableName: "cluster", label: "[cluster]", fileName: fileName, locator: locator)
        try reader.rejectUnknownKeys(allowed: ["database", "password_file", "pool_size", "heartbeat_interval", "dead_after", "ca_file"])
        guard let text = try reader.string("database") else { throw reader.error("database", "is required") }
        var settings: ClusterSettings
        switch ClusterSettings.parse(text) {
        case .success(let parsed): settings = parsed
        case .failure(let problem): throw reader.error("database", problem.text)
        }
        if let file = try reader.string("password_file") {
            let path = resolve(file, against: baseDirectory)
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw reader.error("password_file", "cannot read \"\(path)\"")
            }
            try reader.checkSecret("password_file", path: path, strict: strict, warnings: &warnings)
            settings.password = contents.split(whereSeparator: \.isNewline).first.map(String.init)
        }
        if let password = environment["QAGENT_DB_PASSWORD"], !password.isEmpty { settings.password = password }
        settings.peerCAFile = try reader.pemFile("ca_file", baseDirectory: baseDirectory)
        settings.poolSize = try reader.int("pool_size", range: 1...64) ?? settings.poolSize
        settings.heartbeatInterval = try reader.int("heartbeat_interval", range: 1...300) ?? settings.heartbeatInterval
        // A worker that cannot renew its lease stops its tasks (within kill_grace) a heartbeat
        // before its peers may declare it dead and retry them: that takes this much room.
        let minimumDeadAfter = ClusterSettings.minimumDeadAfter(heartbeatInterval: settings.heartbeatInterval, killGrace: killGrace)
        if let deadAfter = try reader.int("dead_after", range: 1...3600) {
            guard deadAfter >= minimumDeadAfter else {
                throw reader.error("dead_after", "must be >= \(minimumDeadAfter) (2 x heartbeat_interval + [agent] kill_grace: a worker cut off "
                    + "from the database stops its tasks before its peers may retry them), got \(deadAfter)")
            }
            settings.deadAfter = deadAfter
        } else {
            settings.deadAfter = max(settings.deadAfter, minimumDeadAfter)
        }
        return settings
    }
}
