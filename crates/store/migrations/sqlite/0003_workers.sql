-- Each worker as it last showed itself in a claim: what it can run. The
-- API refuses a job that names a toolchain or project no worker offers.
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    toolchain TEXT,
    project TEXT,
    seen_at INTEGER NOT NULL
);
