//! The schema of both back ends, in one place: SQLite's history of migrations, and
//! PostgreSQL's, which starts at version 12 (the first version a fleet could use) with the
//! whole schema at once. A change to the schema is a new entry in each list, and
//! `SCHEMA_VERSION` one higher; a test compares the tables and columns the two end with.
//!
//! PostgreSQL differs only where it must: `"user"` is a reserved word there (quoted),
//! `trust.seq` stands for SQLite's rowid, `trust.scope` says which hosts may honour a
//! record (`[fleet]`), the generation counter is a sequence, text sorts as bytes
//! (`COLLATE "C"`, as SQLite does), and integers are BIGINT.

/// The version both back ends' schemas reach.
pub const SCHEMA_VERSION: i64 = 14;

/// SQLite: each entry moves the schema from version i to i+1.
pub const SQLITE: &[&str] = &[
    "
    CREATE TABLE users (
        name          TEXT PRIMARY KEY NOT NULL,
        secret        TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('pending', 'active')),
        enrolled_at   INTEGER NOT NULL,
        last_step     INTEGER NOT NULL DEFAULT -1,
        last_success  INTEGER NOT NULL DEFAULT 0,
        failures      INTEGER NOT NULL DEFAULT 0,
        lock_count    INTEGER NOT NULL DEFAULT 0,
        locked_until  INTEGER NOT NULL DEFAULT 0
    ) STRICT;
",
    // Trusted sessions and remembered devices; enrolment deferrals.
    "
    CREATE TABLE trust (
        id             TEXT PRIMARY KEY NOT NULL,
        user           TEXT NOT NULL,
        kind           TEXT NOT NULL CHECK (kind IN ('session', 'device')),
        identity_hash  TEXT NOT NULL,
        description    TEXT NOT NULL,
        service        TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        last_used      INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        idle_seconds   INTEGER NOT NULL,
        password_stamp TEXT
    ) STRICT;
    CREATE INDEX trust_by_identity ON trust (user, identity_hash);
    CREATE TABLE deferrals (
        subject     TEXT PRIMARY KEY NOT NULL,
        until       INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        created_by  INTEGER NOT NULL
    ) STRICT;
",
    // Who issued a pending secret: only an administrator may replace an administrator's.
    // Rows from before are counted as an administrator's, the cautious reading.
    "
    ALTER TABLE users ADD COLUMN issued_by_admin INTEGER NOT NULL DEFAULT 1;
",
    // Wrong codes per user and source, and until when that source must wait.
    "
    CREATE TABLE backoff (
        user        TEXT NOT NULL,
        source      TEXT NOT NULL,
        failures    INTEGER NOT NULL,
        until       INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (user, source)
    ) STRICT;
",
    // Generations bind an open conversation to the state that admitted it; the counter is
    // global so a number is never handed out twice.
    "
    ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE generation_counter (n INTEGER NOT NULL) STRICT;
    INSERT INTO generation_counter (n) VALUES (0);
",
    // Wrong codes for names with no factor (unenrolled or unknown), counted and locked like
    // an enrolled account's, so the lockout does not tell who is enrolled.
    "
    CREATE TABLE phantoms (
        name          TEXT PRIMARY KEY NOT NULL,
        failures      INTEGER NOT NULL,
        lock_count    INTEGER NOT NULL,
        locked_until  INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX phantoms_by_age ON phantoms (updated_at);
",
    // The expiry sweep searches instead of reading every trust row (issue 18).
    "
    CREATE INDEX trust_by_expiry ON trust (expires_at);
",
    // Which kind of factor a row is (factor.rs); every row before was TOTP.
    "
    ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'totp' CHECK (kind IN ('totp'));
",
    // Where a user's codes and notices are e-mailed, as an administrator set it.
    "
    CREATE TABLE contacts (
        user   TEXT PRIMARY KEY NOT NULL,
        email  TEXT NOT NULL
    ) STRICT;
",
    // E-mail factors: `kind` loses its CHECK (SQLite cannot alter one, so the table is
    // rebuilt; a kind this version does not know is refused when read, see `kind_of`),
    // and every address on record without a factor becomes one.
    "
    CREATE TABLE users_v10 (
        name            TEXT PRIMARY KEY NOT NULL,
        secret          TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'active')),
        enrolled_at     INTEGER NOT NULL,
        last_step       INTEGER NOT NULL DEFAULT -1,
        last_success    INTEGER NOT NULL DEFAULT 0,
        failures        INTEGER NOT NULL DEFAULT 0,
        lock_count      INTEGER NOT NULL DEFAULT 0,
        locked_until    INTEGER NOT NULL DEFAULT 0,
        issued_by_admin INTEGER NOT NULL DEFAULT 1,
        generation      INTEGER NOT NULL DEFAULT 0,
        kind            TEXT NOT NULL DEFAULT 'totp'
    ) STRICT;
    INSERT INTO users_v10 (name, secret, state, enrolled_at, last_step, last_success, failures,
            lock_count, locked_until, issued_by_admin, generation, kind)
        SELECT name, secret, state, enrolled_at, last_step, last_success, failures,
            lock_count, locked_until, issued_by_admin, generation, kind FROM users;
    DROP TABLE users;
    ALTER TABLE users_v10 RENAME TO users;
    INSERT INTO users (name, secret, state, enrolled_at, kind, failures, lock_count,
            locked_until)
        SELECT c.user, '', 'active', 0, 'email', COALESCE(p.failures, 0),
            COALESCE(p.lock_count, 0), COALESCE(p.locked_until, 0)
        FROM contacts c LEFT JOIN phantoms p ON p.name = c.user
        WHERE c.user NOT IN (SELECT name FROM users);
    DELETE FROM phantoms WHERE name IN (SELECT name FROM users);
    CREATE INDEX contacts_by_email ON contacts (email COLLATE NOCASE);
    CREATE TABLE mail_quota (
        user          TEXT NOT NULL,
        source        TEXT NOT NULL,
        window_start  INTEGER NOT NULL,
        sent          INTEGER NOT NULL,
        PRIMARY KEY (user, source)
    ) STRICT;
",
    // Recovery codes (recovery.rs): a name and an Argon2id hash each, never the code.
    "
    CREATE TABLE recovery_codes (
        user        TEXT NOT NULL,
        id          TEXT NOT NULL,
        salt        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (user, id)
    ) STRICT;
",
    // Security keys an administrator registered for a user (`accept_security_keys`).
    "
    CREATE TABLE security_keys (
        user         TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        added_at     INTEGER NOT NULL,
        PRIMARY KEY (user, fingerprint)
    ) STRICT;
",
    // SMS codes (issue 16): the number an administrator set for a user (not a factor of
    // its own), and each text sent to the user in the last day, for its limits.
    "
    CREATE TABLE phones (
        user   TEXT PRIMARY KEY NOT NULL,
        phone  TEXT NOT NULL
    ) STRICT;
    CREATE INDEX phones_by_phone ON phones (phone);
    CREATE TABLE sms_sends (
        user     TEXT NOT NULL,
        sent_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sms_sends_by_user ON sms_sends (user, sent_at);
",
    // Push approval (issue 17): each user's phone (keys as base64 text), and each push
    // sent to the user in the last day, for its limits.
    "
    CREATE TABLE push_devices (
        serial              TEXT PRIMARY KEY NOT NULL,
        user                TEXT NOT NULL UNIQUE,
        enrolled            INTEGER NOT NULL,
        credential_hash     TEXT NOT NULL,
        credential_expires  INTEGER NOT NULL,
        phone_key           TEXT NOT NULL,
        server_key          TEXT NOT NULL,
        created_at          INTEGER NOT NULL,
        suspended_until     INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE push_sends (
        user     TEXT NOT NULL,
        sent_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX push_sends_by_user ON push_sends (user, sent_at);
",
];

/// The version PostgreSQL's history starts at: [`POSTGRES_BASELINE`] creates it.
pub const POSTGRES_FIRST: i64 = 12;

/// PostgreSQL at version [`POSTGRES_FIRST`].
pub const POSTGRES_BASELINE: &str = r#"
    CREATE TABLE users (
        name            TEXT COLLATE "C" PRIMARY KEY,
        secret          TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'active')),
        enrolled_at     BIGINT NOT NULL,
        last_step       BIGINT NOT NULL DEFAULT -1,
        last_success    BIGINT NOT NULL DEFAULT 0,
        failures        BIGINT NOT NULL DEFAULT 0,
        lock_count      BIGINT NOT NULL DEFAULT 0,
        locked_until    BIGINT NOT NULL DEFAULT 0,
        issued_by_admin BOOLEAN NOT NULL DEFAULT TRUE,
        generation      BIGINT NOT NULL DEFAULT 0,
        kind            TEXT NOT NULL DEFAULT 'totp'
    );
    CREATE SEQUENCE generation_counter;
    CREATE TABLE trust (
        seq            BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id             TEXT PRIMARY KEY,
        "user"         TEXT COLLATE "C" NOT NULL,
        kind           TEXT NOT NULL CHECK (kind IN ('session', 'device')),
        identity_hash  TEXT NOT NULL,
        description    TEXT NOT NULL,
        service        TEXT NOT NULL,
        created_at     BIGINT NOT NULL,
        last_used      BIGINT NOT NULL,
        expires_at     BIGINT NOT NULL,
        idle_seconds   BIGINT NOT NULL,
        password_stamp TEXT,
        scope          TEXT NOT NULL
    );
    CREATE INDEX trust_by_identity ON trust ("user", identity_hash);
    CREATE INDEX trust_by_expiry ON trust (expires_at);
    CREATE TABLE deferrals (
        subject     TEXT COLLATE "C" PRIMARY KEY,
        until       BIGINT NOT NULL,
        reason      TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        created_by  BIGINT NOT NULL
    );
    CREATE TABLE backoff (
        "user"      TEXT COLLATE "C" NOT NULL,
        source      TEXT NOT NULL,
        failures    BIGINT NOT NULL,
        until       BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL,
        PRIMARY KEY ("user", source)
    );
    CREATE TABLE phantoms (
        name          TEXT COLLATE "C" PRIMARY KEY,
        failures      BIGINT NOT NULL,
        lock_count    BIGINT NOT NULL,
        locked_until  BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL
    );
    CREATE INDEX phantoms_by_age ON phantoms (updated_at);
    CREATE TABLE contacts (
        "user"  TEXT COLLATE "C" PRIMARY KEY,
        email   TEXT NOT NULL
    );
    CREATE INDEX contacts_by_email ON contacts (lower(email));
    CREATE TABLE mail_quota (
        "user"        TEXT COLLATE "C" NOT NULL,
        source        TEXT NOT NULL,
        window_start  BIGINT NOT NULL,
        sent          BIGINT NOT NULL,
        PRIMARY KEY ("user", source)
    );
    CREATE TABLE recovery_codes (
        "user"      TEXT COLLATE "C" NOT NULL,
        id          TEXT NOT NULL,
        salt        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        PRIMARY KEY ("user", id)
    );
    CREATE TABLE security_keys (
        "user"       TEXT COLLATE "C" NOT NULL,
        fingerprint  TEXT NOT NULL,
        added_at     BIGINT NOT NULL,
        PRIMARY KEY ("user", fingerprint)
    );
"#;

/// PostgreSQL: each entry moves the schema from version `POSTGRES_FIRST + i` one up.
pub const POSTGRES: &[&str] = &[
    // 13: as SQLite's.
    r#"
    CREATE TABLE phones (
        "user"  TEXT COLLATE "C" PRIMARY KEY,
        phone   TEXT NOT NULL
    );
    CREATE INDEX phones_by_phone ON phones (phone);
    CREATE TABLE sms_sends (
        "user"   TEXT COLLATE "C" NOT NULL,
        sent_at  BIGINT NOT NULL
    );
    CREATE INDEX sms_sends_by_user ON sms_sends ("user", sent_at);
"#,
    // 14: as SQLite's.
    r#"
    CREATE TABLE push_devices (
        serial              TEXT COLLATE "C" PRIMARY KEY,
        "user"              TEXT COLLATE "C" NOT NULL UNIQUE,
        enrolled            BOOLEAN NOT NULL,
        credential_hash     TEXT NOT NULL,
        credential_expires  BIGINT NOT NULL,
        phone_key           TEXT NOT NULL,
        server_key          TEXT NOT NULL,
        created_at          BIGINT NOT NULL,
        suspended_until     BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE push_sends (
        "user"   TEXT COLLATE "C" NOT NULL,
        sent_at  BIGINT NOT NULL
    );
    CREATE INDEX push_sends_by_user ON push_sends ("user", sent_at);
"#,
];

/// Columns only one back end has (see the module's doc), left out when the two are
/// compared.
pub const POSTGRES_ONLY: &[(&str, &str)] = &[("trust", "seq"), ("trust", "scope")];
pub const SQLITE_ONLY_TABLES: &[&str] = &["generation_counter"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_histories_reach_the_same_version() {
        assert_eq!(SQLITE.len() as i64, SCHEMA_VERSION);
        assert_eq!(POSTGRES_FIRST + POSTGRES.len() as i64, SCHEMA_VERSION);
    }
}
