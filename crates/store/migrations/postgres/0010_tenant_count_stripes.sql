-- A tenant's queued and running counts, split into stripes: a transaction
-- adds its changes to the stripe of its own connection (its backend pid
-- modulo the number of stripes), so concurrent claims and completions of one
-- tenant update different rows instead of queueing on one. A tenant's
-- counts are the sums over its stripes, read through the `tenant_queue`
-- view (its last claim: the greatest stripe's).
CREATE TABLE tenant_counts (
    tenant       TEXT NOT NULL,
    stripe       INTEGER NOT NULL,
    queued       BIGINT NOT NULL DEFAULT 0,
    running      BIGINT NOT NULL DEFAULT 0,
    last_claimed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, stripe)
) WITH (fillfactor = 50);
INSERT INTO tenant_counts (tenant, stripe, queued, running, last_claimed)
    SELECT tenant, 0, queued, running, last_claimed FROM tenant_queue;
DROP TABLE tenant_queue;
CREATE VIEW tenant_queue AS
    SELECT tenant, sum(queued)::BIGINT AS queued, sum(running)::BIGINT AS running,
           max(last_claimed) AS last_claimed
    FROM tenant_counts GROUP BY tenant;

-- The times queued jobs become runnable (after a release's backoff), read
-- by the replicas' wake-ups of waiting workers (`Store::next_due_after`).
CREATE INDEX jobs_queued_by_run_after ON jobs (run_after) WHERE state = 'queued';
