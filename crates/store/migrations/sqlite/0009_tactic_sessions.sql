-- Tactic sessions (POST /v1/sessions). A session lives on one host (a
-- worker process, or the embedded workers of one replica) that holds its
-- REPL; `host` is NULL until a host takes the session's `open` operation.
-- A host marks its sessions seen on every poll (`host_seen_at`); a session
-- whose host stopped polling is lost.
CREATE TABLE tactic_sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    host TEXT,
    request TEXT NOT NULL,
    opened TEXT,
    reason TEXT,
    states BIGINT NOT NULL DEFAULT 0,
    tactics BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    host_seen_at BIGINT NOT NULL
);
CREATE INDEX tactic_sessions_live ON tactic_sessions (tenant) WHERE state IN ('opening', 'open');
CREATE INDEX tactic_sessions_host ON tactic_sessions (host) WHERE state IN ('opening', 'open');

-- Every proof state a session made: its parent and the tactic that made it
-- (NULL for the states the session opened with), its goals as JSON.
CREATE TABLE tactic_session_states (
    session_id TEXT NOT NULL REFERENCES tactic_sessions (id),
    state_id BIGINT NOT NULL,
    parent BIGINT,
    tactic TEXT,
    goals TEXT NOT NULL,
    proved BIGINT NOT NULL,
    PRIMARY KEY (session_id, state_id)
);

-- Operations on a session, addressed to its host (`host` NULL: an `open`
-- any host may take). The host writes the reply; the API replica that
-- wrote the operation waits for it.
CREATE TABLE tactic_session_ops (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES tactic_sessions (id),
    host TEXT,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    reply TEXT,
    taken_by TEXT,
    created_at BIGINT NOT NULL,
    taken_at BIGINT,
    done_at BIGINT
);
CREATE INDEX tactic_session_ops_pending ON tactic_session_ops (host, created_at) WHERE taken_by IS NULL;
