-- custos store, PostgreSQL schema version 2.
-- Keep in step with ../sqlite/0002_client_version.sql.

-- Optimistic concurrency for clients: update_client writes only if the
-- stored version is the one the caller read, and increments it. Existing
-- rows start at 1, as new clients do. (Adding a column with a constant
-- default rewrites no rows on PostgreSQL 11 and later.)
ALTER TABLE custos_clients ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- Audit retention (prune_audit_events) deletes the oldest events by time_ms;
-- custos_audit_events_by_time (version 1) already serves it.
