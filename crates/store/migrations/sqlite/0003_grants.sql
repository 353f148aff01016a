-- custos store, SQLite schema version 3: the authorization code flow and
-- refresh-token rotation (OAuth 2.1, RFC 9700).
-- Keep in step with ../postgres/0003_grants.sql: same tables, columns,
-- constraints and indexes; only the type names differ.

-- One person-to-client authorization: the family of its refresh tokens.
-- Revoking it (revoked_at) ends every refresh token of the family.
CREATE TABLE custos_grants (
    grant_id       TEXT    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    -- Space-separated scope values.
    scope          TEXT    NOT NULL,
    -- JSON array of RFC 8707 resource URIs.
    resources_json TEXT    NOT NULL,
    -- RFC 9449 JWK thumbprint the family is bound to, if any.
    dpop_jkt       TEXT,
    created_at     INTEGER NOT NULL,
    -- Absolute end of the family.
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX custos_grants_by_client ON custos_grants (client_id);
CREATE INDEX custos_grants_by_expiry ON custos_grants (expires_at);

-- Authorization codes, kept (consumed) until they expire so that a second
-- redemption is recognised as such.
CREATE TABLE custos_authorization_codes (
    -- SHA-256 of the code.
    code_hash                  BLOB    NOT NULL PRIMARY KEY,
    client_id                  TEXT    NOT NULL,
    redirect_uri               TEXT    NOT NULL,
    code_challenge             TEXT    NOT NULL,
    subject                    TEXT    NOT NULL,
    scope                      TEXT    NOT NULL,
    resources_json             TEXT    NOT NULL,
    dpop_jkt                   TEXT,
    authorization_details_json TEXT,
    created_at                 INTEGER NOT NULL,
    expires_at                 INTEGER NOT NULL,
    consumed_at                INTEGER,
    -- The grant the first redemption created (no foreign key: the code is
    -- redeemed before its grant is inserted).
    grant_id                   TEXT
);
CREATE INDEX custos_authorization_codes_by_expiry ON custos_authorization_codes (expires_at);

-- Refresh tokens; a used one stays (used_at) until its idle expiry so that
-- its reuse revokes the family.
CREATE TABLE custos_refresh_tokens (
    -- SHA-256 of the token.
    token_hash BLOB    NOT NULL PRIMARY KEY,
    -- ON DELETE CASCADE: pruning a grant never fails on a token inserted
    -- (by a rotation on another replica) after the grant's tokens were pruned.
    grant_id   TEXT    NOT NULL REFERENCES custos_grants (grant_id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    -- Idle expiry of this token.
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX custos_refresh_tokens_by_grant ON custos_refresh_tokens (grant_id);
CREATE INDEX custos_refresh_tokens_by_expiry ON custos_refresh_tokens (expires_at);

-- What a person allowed a client; scope is normalized (sorted,
-- deduplicated, space-separated) by the store.
CREATE TABLE custos_consents (
    username   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, client_id, scope)
);
