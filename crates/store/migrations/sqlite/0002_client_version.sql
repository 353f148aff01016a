-- custos store, SQLite schema version 2.
-- Keep in step with ../postgres/0002_client_version.sql.

-- Optimistic concurrency for clients: update_client writes only if the
-- stored version is the one the caller read, and increments it. Existing
-- rows start at 1, as new clients do.
ALTER TABLE custos_clients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- Audit retention (prune_audit_events) deletes the oldest events by time_ms;
-- custos_audit_events_by_time (version 1) already serves it.
