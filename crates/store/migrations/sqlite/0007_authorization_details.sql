-- Rich authorization requests (RFC 9396).
--
-- Authorization details types, each registered with the one resource it
-- belongs to (POST /admin/resources) and a JSON Schema for its entries.
-- The type name is the primary key: a name means one thing on a server.
CREATE TABLE custos_authorization_detail_types (
    type_name    TEXT   NOT NULL PRIMARY KEY,
    resource_uri TEXT   NOT NULL REFERENCES custos_resources (uri) ON DELETE CASCADE,
    -- The JSON Schema (draft 2020-12) of one entry, as registered.
    schema_json  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX custos_authorization_detail_types_by_resource
    ON custos_authorization_detail_types (resource_uri);

-- What a grant (refresh-token family) was authorized for, as a JSON array;
-- refreshes may narrow it, never widen it.
ALTER TABLE custos_grants ADD COLUMN authorization_details_json TEXT;
