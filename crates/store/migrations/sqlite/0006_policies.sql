-- Request-time policy records (Cedar policy-set text), added through the
-- admin API. `custos_policy_generation` counts changes, so that every
-- replica notices one with a single-row read.
CREATE TABLE custos_policies (
    id TEXT PRIMARY KEY,
    cedar TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE custos_policy_generation (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    generation BIGINT NOT NULL
);
INSERT INTO custos_policy_generation (singleton, generation) VALUES (1, 0);

-- The policy decision behind each token request, and the task a per-task
-- token was issued for.
ALTER TABLE custos_audit_events ADD COLUMN policy TEXT;
ALTER TABLE custos_audit_events ADD COLUMN task_id TEXT;

-- What policies see of a resource besides its URI (e.g. `sensitive`).
ALTER TABLE custos_resources ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
