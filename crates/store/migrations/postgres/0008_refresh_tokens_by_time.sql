-- Refresh tokens: no index by grant, and no foreign key to the grant.
--
-- Refresh tokens are now stored under keys in issue order (the service's
-- refresh_token_value module), so new tokens go to the end of the key
-- index. The index by grant was the one left that put every new token on
-- a random page, and only pruning used it: a token is now stored expiring
-- no later than its grant (the store caps it), so pruning by expiry alone
-- takes the tokens of an expired grant with it. The foreign key goes too,
-- as on SQLite (where checking it on a grant's delete needs that index);
-- the store checks the grant exists when it inserts a token.
ALTER TABLE custos_refresh_tokens DROP CONSTRAINT IF EXISTS custos_refresh_tokens_grant_id_fkey;
DROP INDEX IF EXISTS custos_refresh_tokens_by_grant;
UPDATE custos_refresh_tokens t SET expires_at = g.expires_at
FROM custos_grants g
WHERE g.grant_id = t.grant_id AND g.expires_at < t.expires_at;
DELETE FROM custos_refresh_tokens t
WHERE NOT EXISTS (SELECT 1 FROM custos_grants g WHERE g.grant_id = t.grant_id);
