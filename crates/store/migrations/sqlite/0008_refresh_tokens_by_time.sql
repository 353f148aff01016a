-- Refresh tokens: no index by grant, and no foreign key to the grant.
--
-- Refresh tokens are now stored under keys in issue order (the service's
-- refresh_token_value module), so a group of rotations writes a few pages
-- at the end of the key index. The index by grant was the one left that
-- put every new token on a random page, and only pruning used it: a token
-- is now stored expiring no later than its grant (the store caps it), so
-- pruning by expiry alone takes the tokens of an expired grant with it.
-- The foreign key goes too: SQLite checks it on every delete of a grant by
-- searching the tokens by grant, a scan of the whole table without that
-- index; the store checks the grant exists when it inserts a token.
--
-- SQLite cannot drop a constraint: the table is made again.
CREATE TABLE custos_refresh_tokens_0008 (
    -- The token's key: its issue time and SHA-256 (or, for a token issued
    -- before, the SHA-256 alone).
    token_hash    BLOB    NOT NULL PRIMARY KEY,
    grant_id      TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    scope         TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Idle expiry of this token, no later than its grant's expiry.
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    grace_used_at INTEGER
);
INSERT INTO custos_refresh_tokens_0008
    (token_hash, grant_id, client_id, scope, created_at, expires_at, used_at, grace_used_at)
SELECT t.token_hash, t.grant_id, t.client_id, t.scope, t.created_at,
       MIN(t.expires_at, g.expires_at), t.used_at, t.grace_used_at
FROM custos_refresh_tokens t JOIN custos_grants g ON g.grant_id = t.grant_id;
DROP TABLE custos_refresh_tokens;
ALTER TABLE custos_refresh_tokens_0008 RENAME TO custos_refresh_tokens;
CREATE INDEX custos_refresh_tokens_by_expiry ON custos_refresh_tokens (expires_at);
