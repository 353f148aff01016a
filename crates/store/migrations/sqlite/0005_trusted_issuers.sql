-- External issuers of workload identity (OIDC issuers such as Kubernetes
-- and CI, SPIFFE trust domains): `name` is the issuer URL or the trust
-- domain, `config_json` the validated registration.
CREATE TABLE custos_trusted_issuers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    config_json TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every token request's audit event says how the client proved itself.
ALTER TABLE custos_audit_events ADD COLUMN auth_method TEXT;
ALTER TABLE custos_audit_events ADD COLUMN attested_id TEXT;
