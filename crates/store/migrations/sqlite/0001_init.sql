-- Jobs and their queue. A job's state and its lease change together, in one
-- transaction; `result` is written once, by the holder of the current lease.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    batch_id         TEXT,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    request          TEXT NOT NULL,
    header_key       TEXT NOT NULL,
    result           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    last_error       TEXT,
    lease_id         TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    run_after        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX jobs_by_tenant_state ON jobs (tenant, state, id);
CREATE INDEX jobs_by_tenant_header ON jobs (tenant, state, header_key, id);
CREATE INDEX jobs_by_lease_expiry ON jobs (state, lease_expires_at);
CREATE INDEX jobs_by_batch ON jobs (batch_id, id);
CREATE INDEX jobs_by_state ON jobs (state, id);

-- Per-tenant queue counters, maintained in the same transactions as `jobs`,
-- so a fair claim picks a tenant without scanning the queue.
CREATE TABLE tenant_queue (
    tenant       TEXT PRIMARY KEY,
    queued       INTEGER NOT NULL DEFAULT 0,
    running      INTEGER NOT NULL DEFAULT 0,
    last_claimed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tenants (
    name                TEXT PRIMARY KEY,
    max_queued          INTEGER NOT NULL,
    max_running         INTEGER NOT NULL,
    requests_per_second REAL NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    scope         TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
