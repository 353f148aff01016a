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
