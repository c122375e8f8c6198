import Foundation
import Logging
import PostgresNIO

/// The cluster's tables, created and migrated by the agents themselves (DESIGN §10).
///
/// One transaction under a transaction-scoped advisory lock: whichever agent takes the lock
/// first migrates, the others wait and then find the schema current; a failure rolls back,
/// so nothing is ever half-migrated. A schema newer than this binary knows is refused.
enum ClusterSchema {
    /// The schema version this binary writes and reads.
    static let currentVersion = 6
    /// `pg_advisory_xact_lock` key: "qagent" in ASCII.
    static let lockKey: Int64 = 0x71_61_67_65_6E_74

    /// DDL per version, applied in order. Static text only: nothing here comes from input.
    static let migrations: [Int: [String]] = [
        1: [
            """
            CREATE TABLE qagent_member (
                address text PRIMARY KEY,
                instance text NOT NULL,
                hostname text NOT NULL,
                version text NOT NULL,
                app_name text NOT NULL,
                app_id integer NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL,
                draining boolean NOT NULL DEFAULT false
            )
            """,
            """
            CREATE TABLE qagent_member_job (
                address text NOT NULL REFERENCES qagent_member (address) ON DELETE CASCADE,
                job text NOT NULL,
                definition jsonb NOT NULL,
                can_schedule boolean NOT NULL DEFAULT true,
                PRIMARY KEY (address, job)
            )
            """,
            "CREATE INDEX qagent_member_job_by_job ON qagent_member_job (job)",
        ],
        2: [
            // Cluster tasks. A fire's id is "<job>:<scheduled ms>" and (job, scheduled_at) is
            // unique: however many agents insert a fire, one row results.
            """
            CREATE TABLE qagent_task (
                id text PRIMARY KEY,
                job text NOT NULL,
                scheduled_at bigint,
                param text NOT NULL DEFAULT '{}',
                worker text,
                status text NOT NULL,
                handbacks integer NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                claimed_at timestamptz
            )
            """,
            "CREATE UNIQUE INDEX qagent_task_fire ON qagent_task (job, scheduled_at) WHERE scheduled_at IS NOT NULL",
            "CREATE INDEX qagent_task_open ON qagent_task (worker, created_at) WHERE status <> 'finished'",
        ],
        3: [
            // Results, from the workers' local outboxes; `attempt` guards against a late result
            // of an earlier attempt.
            """
            ALTER TABLE qagent_task
                ADD COLUMN attempt integer NOT NULL DEFAULT 1,
                ADD COLUMN result integer NOT NULL DEFAULT 0,
                ADD COLUMN start_time bigint,
                ADD COLUMN end_time bigint,
                ADD COLUMN duration bigint,
                ADD COLUMN message text NOT NULL DEFAULT ''
            """,
        ],
        4: [
            // Cluster-wide job state (enabled, last*, the definition of the most recently
            // started agent serving it, the round-robin counter). Its row is also the lock that
            // serializes admissions of the job's tasks (overlap, max_concurrency cluster-wide).
            """
            CREATE TABLE qagent_job (
                job text PRIMARY KEY,
                enabled boolean NOT NULL,
                definition jsonb NOT NULL,
                app_name text NOT NULL,
                app_id integer NOT NULL,
                last_run bigint NOT NULL DEFAULT 0,
                last_state integer NOT NULL DEFAULT 0,
                last_duration bigint NOT NULL DEFAULT 0,
                last_update bigint NOT NULL DEFAULT 0,
                assignments bigint NOT NULL DEFAULT 0
            )
            """,
            // workers/state.do: per job and address, outliving a member's restarts.
            """
            CREATE TABLE qagent_worker_switch (
                job text NOT NULL,
                address text NOT NULL,
                can_schedule boolean NOT NULL,
                PRIMARY KEY (job, address)
            )
            """,
            "ALTER TABLE qagent_member_job DROP COLUMN can_schedule",
            // Tasks wait `pending` until admitted (a free slot of the job and a worker);
            // `pinned` keeps a dispatch's chosen worker, `refused_by` the last worker that
            // handed it back.
            "ALTER TABLE qagent_task ADD COLUMN pinned text, ADD COLUMN refused_by text",
            "UPDATE qagent_task SET status = 'pending' WHERE status = 'unassigned'",
            "CREATE INDEX qagent_task_job_open ON qagent_task (job, created_at) WHERE status <> 'finished'",
            "CREATE INDEX qagent_task_finished ON qagent_task (end_time) WHERE status = 'finished'",
        ],
        5: [
            // When the task was assigned: a worker that does not claim it within dead_after
            // loses it to another.
            "ALTER TABLE qagent_task ADD COLUMN assigned_at timestamptz",
            "UPDATE qagent_task SET assigned_at = created_at WHERE status IN ('assigned', 'claimed')",
            // Results of an earlier attempt that arrived after a later one began: recorded, never applied.
            """
            CREATE TABLE qagent_stale_result (
                task_id text NOT NULL,
                attempt integer NOT NULL,
                worker text NOT NULL,
                result integer NOT NULL,
                message text NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (task_id, attempt, worker)
            )
            """,
        ],
        6: [
            // A task retried after a failure (`retries`) waits pending until its backoff is over.
            "ALTER TABLE qagent_task ADD COLUMN not_before timestamptz",
        ],
    ]

    /// Brings the schema to ``currentVersion``; returns the version found before.
    @discardableResult
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    CREATE TABLE IF NOT EXISTS qagent_schema (
                        id integer PRIMARY KEY CHECK (id = 1),
                        version integer NOT NULL,
                        migrated_at timestamptz NOT NULL DEFAULT now()
                    )
                    """),
                logger: logger)
            var found = 0
            for try await version in try await connection.query("SELECT version FROM qagent_schema WHERE id = 1", logger: logger).decode(Int.self) {
                found = version
            }
            guard found <= currentVersion else {
                throw ClusterError("the database's schema is version \(found), newer than this qagent knows (\(currentVersion)): upgrade qagent")
            }
            guard found < currentVersion else { return found }
            for version in (found + 1)...currentVersion {
                for statement in migrations[version] ?? [] {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
            try await connection.query("""
                INSERT INTO qagent_schema (id, version) VALUES (1, \(currentVersion))
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, migrated_at = now()
                """, logger: logger)
            logger.notice("cluster schema migrated", metadata: ["from": "\(found)", "to": "\(currentVersion)"])
            return found
        }
    }
}
