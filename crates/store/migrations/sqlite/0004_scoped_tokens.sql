-- Tokens belong to a tenant or to the farm (tenant NULL), and may expire.
-- Scopes: 'user' (always a tenant's), 'worker' (the farm's, or one tenant's)
-- and 'operator' (always the farm's). The farm-wide 'admin' tokens of old
-- become operator tokens and the old worker tokens farm worker tokens.
-- SQLite cannot relax NOT NULL in place, so the table is rebuilt.
CREATE TABLE api_keys_scoped (
    key_id        TEXT PRIMARY KEY,
    tenant        TEXT,
    scope         TEXT NOT NULL CHECK (scope IN ('user', 'worker', 'operator')),
    secret_sha256 TEXT NOT NULL UNIQUE,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    CHECK (scope <> 'user' OR tenant IS NOT NULL),
    CHECK (scope <> 'operator' OR tenant IS NULL)
);
INSERT INTO api_keys_scoped (key_id, tenant, scope, secret_sha256, revoked, created_at, expires_at)
SELECT key_id,
       CASE WHEN scope IN ('admin', 'worker') THEN NULL ELSE tenant END,
       CASE WHEN scope = 'admin' THEN 'operator' ELSE scope END,
       secret_sha256, revoked, created_at, NULL
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_scoped RENAME TO api_keys;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
