/// The database schema and its migrations, versioned by `PRAGMA user_version`.
///
/// `migrations[n]` takes a database from version n to n + 1; each runs in its own transaction
/// together with the new `user_version`, so a crash mid-migration leaves the old version intact.
/// Never edit a released step: append a new one.
enum Schema {
    static let migrations: [String] = [
        // 0 -> 1: the first schema.
        //
        // Times: `disconnected_at`, `will_due_at` and `expires_at` are wall-clock milliseconds
        // (Unix epoch), so they keep their meaning across restarts; NULL means never / not set.
        //
        // The queue is denormalised: each row carries its own copy of the message, one copy
        // per persistent subscriber. Simple and fast for few subscribers per message; for
        // fan-out to many persistent subscribers the next step is a shared, reference-counted
        // `messages` table that queue rows point into.
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            client_id TEXT NOT NULL UNIQUE,
            expiry INTEGER NOT NULL,
            will BLOB,
            will_delay INTEGER,
            disconnected_at INTEGER,
            will_due_at INTEGER
        );
        CREATE TABLE subscriptions (
            session_id INTEGER NOT NULL,
            filter TEXT NOT NULL,
            options INTEGER NOT NULL,
            subscription_id INTEGER,
            PRIMARY KEY (session_id, filter)
        ) WITHOUT ROWID;
        CREATE TABLE queue (
            session_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            message BLOB NOT NULL,
            expires_at INTEGER,
            qos INTEGER NOT NULL,
            retain INTEGER NOT NULL,
            subscription_ids BLOB,
            shared_group TEXT,
            packet_id INTEGER NOT NULL DEFAULT 0,
            released INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE inbound (
            session_id INTEGER NOT NULL,
            packet_id INTEGER NOT NULL,
            PRIMARY KEY (session_id, packet_id)
        ) WITHOUT ROWID;
        CREATE TABLE retained (
            topic TEXT PRIMARY KEY,
            message BLOB NOT NULL,
            expires_at INTEGER
        );
        """,
        // 1 -> 2: the queue becomes an ordinary (rowid) table. As a WITHOUT ROWID table, any row
        // over about 1 kB (a message with a 1 kB payload) spilled into an overflow page of its
        // own: 200,000 such messages took 936 MB on disk. A rowid table keeps rows up to a page
        // inline, at the cost of a separate index for the (session_id, seq) key.
        """
        CREATE TABLE queue_v2 (
            session_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            message BLOB NOT NULL,
            expires_at INTEGER,
            qos INTEGER NOT NULL,
            retain INTEGER NOT NULL,
            subscription_ids BLOB,
            shared_group TEXT,
            packet_id INTEGER NOT NULL DEFAULT 0,
            released INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, seq)
        );
        INSERT INTO queue_v2 (session_id, seq, message, expires_at, qos, retain, subscription_ids, shared_group, packet_id, released)
            SELECT session_id, seq, message, expires_at, qos, retain, subscription_ids, shared_group, packet_id, released FROM queue;
        DROP TABLE queue;
        ALTER TABLE queue_v2 RENAME TO queue;
        """,
    ]

    /// The version this build writes and the newest it reads.
    static var version: Int { migrations.count }

    /// Brings `database` to `version`. The caller has checked that it is not newer.
    static func migrate(_ database: Database, from current: Int) throws(StoreError) {
        var current = current
        while current < version {
            try database.execute("BEGIN IMMEDIATE", "starting the migration to schema version \(current + 1)")
            do throws(StoreError) {
                try database.execute(migrations[current], "migrating to schema version \(current + 1)")
                try database.execute("PRAGMA user_version = \(current + 1)", "setting the schema version to \(current + 1)")
                try database.execute("COMMIT", "committing the migration to schema version \(current + 1)")
            } catch {
                try? database.execute("ROLLBACK", "rolling back a migration")
                throw error
            }
            current += 1
        }
    }

    /// Every statement the writer runs, prepared once at open and reused by every batch.
    enum SQL {
        static let putSession = """
            INSERT OR REPLACE INTO sessions (id, client_id, expiry, will, will_delay, disconnected_at, will_due_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """
        static let otherSessionOfClient = "SELECT id FROM sessions WHERE client_id = ?1 AND id != ?2"
        static let deleteSession = "DELETE FROM sessions WHERE id = ?1"
        static let deleteSubscriptionsOfSession = "DELETE FROM subscriptions WHERE session_id = ?1"
        static let deleteQueueOfSession = "DELETE FROM queue WHERE session_id = ?1"
        static let deleteInboundOfSession = "DELETE FROM inbound WHERE session_id = ?1"
        static let putSubscription = """
            INSERT OR REPLACE INTO subscriptions (session_id, filter, options, subscription_id) VALUES (?1, ?2, ?3, ?4)
            """
        static let deleteSubscription = "DELETE FROM subscriptions WHERE session_id = ?1 AND filter = ?2"
        static let enqueue = """
            INSERT OR REPLACE INTO queue
                (session_id, seq, message, expires_at, qos, retain, subscription_ids, shared_group, packet_id, released)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """
        static let sent = "UPDATE queue SET packet_id = ?3 WHERE session_id = ?1 AND seq = ?2"
        static let released = "UPDATE queue SET released = 1 WHERE session_id = ?1 AND seq = ?2"
        static let dequeue = "DELETE FROM queue WHERE session_id = ?1 AND seq = ?2"
        static let addInbound = "INSERT OR IGNORE INTO inbound (session_id, packet_id) VALUES (?1, ?2)"
        static let removeInbound = "DELETE FROM inbound WHERE session_id = ?1 AND packet_id = ?2"
        static let putRetained = "INSERT OR REPLACE INTO retained (topic, message, expires_at) VALUES (?1, ?2, ?3)"
        static let deleteRetained = "DELETE FROM retained WHERE topic = ?1"
        static let retainedExists = "SELECT 1 FROM retained WHERE topic = ?1"
        static let countRetained = "SELECT COUNT(*) FROM retained"
        /// Retained messages in a topic range (the literal prefix of a filter), unexpired at ?3.
        static let retainedInRange = """
            SELECT topic, message, expires_at FROM retained
            WHERE topic >= ?1 AND topic < ?2 AND (expires_at IS NULL OR expires_at > ?3) ORDER BY topic
            """
        static let allRetained = "SELECT topic, message, expires_at FROM retained WHERE (expires_at IS NULL OR expires_at > ?1) ORDER BY topic"
    }
}
