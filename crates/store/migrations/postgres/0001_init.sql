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
    lease_expires_at BIGINT,
    run_after        BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX jobs_queued_by_tenant ON jobs (tenant, id) WHERE state = 'queued';
CREATE INDEX jobs_queued_by_tenant_header ON jobs (tenant, header_key, id) WHERE state = 'queued';
CREATE INDEX jobs_running_by_expiry ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_by_tenant_state ON jobs (tenant, state, id);
CREATE INDEX jobs_by_batch ON jobs (batch_id, id);
CREATE INDEX jobs_by_state ON jobs (state, id);

-- Per-tenant queue counters, maintained in the same transactions as `jobs`,
-- so a fair claim picks a tenant without scanning the queue.
CREATE TABLE tenant_queue (
    tenant       TEXT PRIMARY KEY,
    queued       BIGINT NOT NULL DEFAULT 0,
    running      BIGINT NOT NULL DEFAULT 0,
    last_claimed BIGINT NOT NULL DEFAULT 0
);
CREATE SEQUENCE claim_counter;

CREATE TABLE tenants (
    name                TEXT PRIMARY KEY,
    max_queued          BIGINT NOT NULL,
    max_running         BIGINT NOT NULL,
    requests_per_second DOUBLE PRECISION NOT NULL,
    created_at          BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    scope         TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    revoked       BOOLEAN NOT NULL DEFAULT false,
    created_at    BIGINT NOT NULL
);
