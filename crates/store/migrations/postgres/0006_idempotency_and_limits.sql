-- Idempotency keys of submissions: a key of one tenant names the batch it
-- admitted. Written in the enqueue transaction of that batch, so two
-- submissions racing with one key admit one batch. `request_sha256` is the
-- SHA-256 of the request body: the same key with another body is refused.
-- `job_ids` are the batch's job ids, in order, separated by spaces.
CREATE TABLE idempotency_keys (
    tenant         TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    job_ids        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- The API replicas serving the farm, each refreshed by its own heartbeat:
-- a replica enforces its share (1 / live replicas) of each tenant's rate.
CREATE TABLE api_replicas (
    replica_id TEXT PRIMARY KEY,
    seen_at    BIGINT NOT NULL
);
