-- The times queued jobs become runnable (after a release's backoff), read
-- by the replica's wake-ups of waiting workers (`Store::next_due_after`).
-- (On PostgreSQL this migration also splits the tenant counts into
-- stripes; SQLite has one writer at a time, so its counts stay one row.)
CREATE INDEX jobs_queued_by_run_after ON jobs (run_after) WHERE state = 'queued';
