-- The artifacts outbox: a job whose verdict is stored owes its artifacts
-- (their names, separated by spaces: input.json summary.json messages.json)
-- until a replica has written them. Set in the verdict's own transaction,
-- cleared (NULL) once the files are written.
ALTER TABLE jobs ADD COLUMN artifacts_owed TEXT;
CREATE INDEX jobs_artifacts_owed ON jobs (id) WHERE artifacts_owed IS NOT NULL;

-- The queue's clock: when a claim or renewal last reached the store. A gap
-- longer than an outage threshold means nobody could renew a lease, and
-- the leases running through it are extended by the gap.
CREATE TABLE queue_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seen BIGINT NOT NULL
);
INSERT INTO queue_clock (id, last_seen) VALUES (1, 0);
