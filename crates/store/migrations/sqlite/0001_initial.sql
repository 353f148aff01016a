-- custos store, SQLite schema version 1.
-- Times are INTEGER seconds since the Unix epoch (time_ms: milliseconds).
-- Keep in step with ../postgres/0001_initial.sql: same tables, columns,
-- constraints and indexes; only the type names differ.

CREATE TABLE custos_clients (
    client_id                  TEXT    NOT NULL PRIMARY KEY,
    metadata_json              TEXT    NOT NULL,
    secret_hash                BLOB,
    secret_created_at          INTEGER,
    previous_secret_hash       BLOB,
    previous_secret_expires_at INTEGER,
    registration_token_hash    BLOB,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    disabled_at                INTEGER
);
CREATE INDEX custos_clients_by_created ON custos_clients (created_at, client_id);

CREATE TABLE custos_signing_keys (
    kid                TEXT    NOT NULL PRIMARY KEY,
    alg                TEXT    NOT NULL,
    public_jwk         TEXT    NOT NULL,
    sealed_private_key BLOB    NOT NULL,
    created_at         INTEGER NOT NULL,
    activates_at       INTEGER NOT NULL,
    retired_at         INTEGER
);

CREATE TABLE custos_resources (
    uri         TEXT    NOT NULL PRIMARY KEY,
    -- JSON array of scope strings.
    scopes_json TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE custos_users (
    username      TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE custos_initial_access_tokens (
    token_hash  BLOB    NOT NULL PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    description TEXT
);
CREATE INDEX custos_initial_access_tokens_by_expiry ON custos_initial_access_tokens (expires_at);

CREATE TABLE custos_replay (
    namespace  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, jti)
);
CREATE INDEX custos_replay_by_expiry ON custos_replay (expires_at);

CREATE TABLE custos_revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX custos_revoked_tokens_by_expiry ON custos_revoked_tokens (expires_at);

CREATE TABLE custos_audit_events (
    -- AUTOINCREMENT: ids are never reused, even after rows are deleted.
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    time_ms     INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    client_id   TEXT,
    grant_type  TEXT,
    scope       TEXT,
    resource    TEXT,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('success', 'failure')),
    reason      TEXT,
    source_addr TEXT
);
CREATE INDEX custos_audit_events_by_client ON custos_audit_events (client_id, id);
CREATE INDEX custos_audit_events_by_type ON custos_audit_events (event_type, id);
CREATE INDEX custos_audit_events_by_time ON custos_audit_events (time_ms);
-- Serves client_last_used(): MAX(time_ms) per client over token.issued.
CREATE INDEX custos_audit_events_last_used ON custos_audit_events (client_id, time_ms)
    WHERE event_type = 'token.issued';
