-- Prove jobs (POST /v1/prove): the request and usage as JSON, the outcome,
-- and the lease of the replica driving the job (a replica takes a running
-- job whose lease has run out, so a job survives its replica).
CREATE TABLE prove_jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    usage TEXT NOT NULL,
    proof TEXT,
    reason TEXT,
    lease_owner TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX prove_jobs_running ON prove_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX prove_jobs_tenant_running ON prove_jobs (tenant) WHERE state = 'running';

-- One row per candidate (round 0: the statement check), recorded with the
-- id of its check before the check is submitted; the attempt as JSON.
CREATE TABLE prove_attempts (
    job_id TEXT NOT NULL REFERENCES prove_jobs (id),
    round BIGINT NOT NULL,
    candidate BIGINT NOT NULL,
    check_id TEXT NOT NULL,
    attempt TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, round, candidate)
);

-- Model tokens and cost each tenant used per day (days since the Unix epoch, UTC).
CREATE TABLE prove_tenant_days (
    tenant TEXT NOT NULL,
    day BIGINT NOT NULL,
    tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
);
