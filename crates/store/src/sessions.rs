//! Tactic sessions, their proof states and the operations addressed to the
//! host that holds each session's REPL, on both backends.
//!
//! The routing of a session is this table: an API replica writes an
//! operation addressed to the session's host and waits for its reply; the
//! host (a worker process over the worker API, or the embedded workers of
//! one replica) takes the operations addressed to it, marks its sessions
//! seen while it does, and writes the replies. Requests, replies and goals
//! are JSON text the store does not read: their shape belongs to the server.

use crate::postgres::pg_error;
use crate::sqlite::query_error;
use crate::{Backend, Store, StoreError, UnixMillis};
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

/// A session as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub tenant: String,
    /// `opening`, `open`, `closed` or `lost`.
    pub state: String,
    /// The host holding the session's REPL, once one took it.
    pub host: Option<String>,
    /// The open request, as JSON.
    pub request: String,
    /// The open reply (initial states, messages), as JSON.
    pub opened: Option<String>,
    /// Why the session ended or failed to open.
    pub reason: Option<String>,
    pub states: u64,
    pub tactics: u64,
    pub created_at: UnixMillis,
    pub last_used_at: UnixMillis,
    pub host_seen_at: UnixMillis,
}

/// One proof state of a session.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionStateRow {
    pub state_id: u64,
    pub parent: Option<u64>,
    pub tactic: Option<String>,
    /// The goals, as JSON.
    pub goals: String,
    pub proved: bool,
}

/// One operation on a session.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionOpRow {
    pub id: String,
    pub session_id: String,
    /// The host it is addressed to; `None` for an `open` any host may take.
    pub host: Option<String>,
    /// `open` or `tactics`.
    pub kind: String,
    pub request: String,
    pub reply: Option<String>,
    pub created_at: UnixMillis,
}

/// A new session and the operation that opens it.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: String,
    pub tenant: String,
    pub request: String,
    pub open_op_id: String,
    pub now: UnixMillis,
}

/// What a host reports for an operation it took (`Store::complete_session_op`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionOpDone {
    pub op_id: String,
    pub host: String,
    pub reply: String,
    /// The proof states the operation made.
    pub states: Vec<SessionStateRow>,
    /// Tactics the operation ran.
    pub tactics: u64,
    /// The session's new state (`open` after an open, `closed` when the
    /// open failed, `lost` when its REPL died), with the open reply and reason.
    pub session_state: Option<String>,
    pub opened: Option<String>,
    pub reason: Option<String>,
}

const SESSION_COLUMNS: &str = "id, tenant, state, host, request, opened, reason, states, tactics, created_at, last_used_at, host_seen_at";
const OP_COLUMNS: &str = "id, session_id, host, kind, request, reply, created_at";
const LIVE: &str = "('opening', 'open')";

fn sqlite_session(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        tenant: row.get(1)?,
        state: row.get(2)?,
        host: row.get(3)?,
        request: row.get(4)?,
        opened: row.get(5)?,
        reason: row.get(6)?,
        states: row.get::<_, i64>(7)? as u64,
        tactics: row.get::<_, i64>(8)? as u64,
        created_at: row.get(9)?,
        last_used_at: row.get(10)?,
        host_seen_at: row.get(11)?,
    })
}

fn pg_session(row: &tokio_postgres::Row) -> SessionRow {
    SessionRow {
        id: row.get(0),
        tenant: row.get(1),
        state: row.get(2),
        host: row.get(3),
        request: row.get(4),
        opened: row.get(5),
        reason: row.get(6),
        states: row.get::<_, i64>(7) as u64,
        tactics: row.get::<_, i64>(8) as u64,
        created_at: row.get(9),
        last_used_at: row.get(10),
        host_seen_at: row.get(11),
    }
}

fn sqlite_op(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionOpRow> {
    Ok(SessionOpRow {
        id: row.get(0)?,
        session_id: row.get(1)?,
        host: row.get(2)?,
        kind: row.get(3)?,
        request: row.get(4)?,
        reply: row.get(5)?,
        created_at: row.get(6)?,
    })
}

fn pg_op(row: &tokio_postgres::Row) -> SessionOpRow {
    SessionOpRow {
        id: row.get(0),
        session_id: row.get(1),
        host: row.get(2),
        kind: row.get(3),
        request: row.get(4),
        reply: row.get(5),
        created_at: row.get(6),
    }
}

fn sqlite_state(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionStateRow> {
    Ok(SessionStateRow {
        state_id: row.get::<_, i64>(0)? as u64,
        parent: row.get::<_, Option<i64>>(1)?.map(|parent| parent as u64),
        tactic: row.get(2)?,
        goals: row.get(3)?,
        proved: row.get::<_, i64>(4)? != 0,
    })
}

fn pg_state(row: &tokio_postgres::Row) -> SessionStateRow {
    SessionStateRow {
        state_id: row.get::<_, i64>(0) as u64,
        parent: row.get::<_, Option<i64>>(1).map(|parent| parent as u64),
        tactic: row.get(2),
        goals: row.get(3),
        proved: row.get::<_, i64>(4) != 0,
    }
}

impl Store {
    /// Store a new session (state `opening`) and its `open` operation, unless
    /// the tenant already has `max_live` live sessions: then `Err(live)`.
    pub async fn create_session(
        &self,
        new: &NewSession,
        max_live: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        let new = Arc::new(new.clone());
        let max_live = max_live as i64;
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let tx = connection.transaction().map_err(query_error)?;
                        let live: i64 = tx
                            .query_row(
                                &format!("SELECT count(*) FROM tactic_sessions WHERE tenant = ?1 AND state IN {LIVE}"),
                                params![new.tenant],
                                |row| row.get(0),
                            )
                            .map_err(query_error)?;
                        if live >= max_live {
                            return Ok(Err(live as u64));
                        }
                        tx.execute(
                            "INSERT INTO tactic_sessions (id, tenant, state, request, created_at, last_used_at, host_seen_at) VALUES (?1, ?2, 'opening', ?3, ?4, ?4, ?4)",
                            params![new.id, new.tenant, new.request, new.now],
                        )
                        .map_err(query_error)?;
                        tx.execute(
                            "INSERT INTO tactic_session_ops (id, session_id, kind, request, created_at) VALUES (?1, ?2, 'open', ?3, ?4)",
                            params![new.open_op_id, new.id, new.request, new.now],
                        )
                        .map_err(query_error)?;
                        tx.commit().map_err(query_error)?;
                        Ok(Ok(()))
                    })
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .transaction(Box::new(move |tx| {
                        let new = Arc::clone(&new);
                        Box::pin(async move {
                            // One tenant's sessions are counted one at a time.
                            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&new.tenant]).await?;
                            let live: i64 = tx
                                .query_one(
                                    &format!("SELECT count(*) FROM tactic_sessions WHERE tenant = $1 AND state IN {LIVE}"),
                                    &[&new.tenant],
                                )
                                .await?
                                .get(0);
                            if live >= max_live {
                                return Ok(Err(live as u64));
                            }
                            tx.execute(
                                "INSERT INTO tactic_sessions (id, tenant, state, request, created_at, last_used_at, host_seen_at) VALUES ($1, $2, 'opening', $3, $4, $4, $4)",
                                &[&new.id, &new.tenant, &new.request, &new.now],
                            )
                            .await?;
                            tx.execute(
                                "INSERT INTO tactic_session_ops (id, session_id, kind, request, created_at) VALUES ($1, $2, 'open', $3, $4)",
                                &[&new.open_op_id, &new.id, &new.request, &new.now],
                            )
                            .await?;
                            Ok(Ok(()))
                        })
                    }))
                    .await
            }
        }
    }

    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let id = id.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        connection
                            .query_row(
                                &format!(
                                    "SELECT {SESSION_COLUMNS} FROM tactic_sessions WHERE id = ?1"
                                ),
                                params![id],
                                sqlite_session,
                            )
                            .optional()
                            .map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!("SELECT {SESSION_COLUMNS} FROM tactic_sessions WHERE id = $1"),
                    &[&id],
                )
                .await?
                .first()
                .map(pg_session)),
        }
    }

    /// Every proof state of a session, in the order they were made.
    pub async fn session_states(&self, id: &str) -> Result<Vec<SessionStateRow>, StoreError> {
        let id = id.to_string();
        let sql = "SELECT state_id, parent, tactic, goals, proved FROM tactic_session_states WHERE session_id = ";
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let mut statement = connection
                            .prepare(&format!("{sql}?1 ORDER BY state_id"))
                            .map_err(query_error)?;
                        let rows = statement
                            .query_map(params![id], sqlite_state)
                            .map_err(query_error)?;
                        rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(&format!("{sql}$1 ORDER BY state_id"), &[&id])
                .await?
                .iter()
                .map(pg_state)
                .collect()),
        }
    }

    /// Address an operation to the host of an open session and mark the
    /// session used; false (and nothing written) when the session is not open.
    pub async fn add_session_op(&self, op: &SessionOpRow) -> Result<bool, StoreError> {
        let op = Arc::new(op.clone());
        let insert_sqlite =
            "INSERT INTO tactic_session_ops (id, session_id, host, kind, request, created_at)
             SELECT ?1, id, host, ?2, ?3, ?4 FROM tactic_sessions WHERE id = ?5 AND state = 'open'";
        let insert_pg =
            "INSERT INTO tactic_session_ops (id, session_id, host, kind, request, created_at)
             SELECT $1, id, host, $2, $3, $4 FROM tactic_sessions WHERE id = $5 AND state = 'open'";
        let touch_sqlite = "UPDATE tactic_sessions SET last_used_at = ?1 WHERE id = ?2";
        let touch_pg = "UPDATE tactic_sessions SET last_used_at = $1 WHERE id = $2";
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let tx = connection.transaction().map_err(query_error)?;
                        let added = tx
                            .execute(
                                insert_sqlite,
                                params![op.id, op.kind, op.request, op.created_at, op.session_id],
                            )
                            .map_err(query_error)?;
                        if added == 1 {
                            tx.execute(touch_sqlite, params![op.created_at, op.session_id])
                                .map_err(query_error)?;
                        }
                        tx.commit().map_err(query_error)?;
                        Ok(added == 1)
                    })
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .transaction(Box::new(move |tx| {
                        let op = Arc::clone(&op);
                        Box::pin(async move {
                            let added = tx
                                .execute(
                                    insert_pg,
                                    &[
                                        &op.id,
                                        &op.kind,
                                        &op.request,
                                        &op.created_at,
                                        &op.session_id,
                                    ],
                                )
                                .await?;
                            if added == 1 {
                                tx.execute(touch_pg, &[&op.created_at, &op.session_id])
                                    .await?;
                            }
                            Ok(added == 1)
                        })
                    }))
                    .await
            }
        }
    }

    pub async fn get_session_op(&self, id: &str) -> Result<Option<SessionOpRow>, StoreError> {
        let id = id.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        connection
                            .query_row(
                                &format!(
                                    "SELECT {OP_COLUMNS} FROM tactic_session_ops WHERE id = ?1"
                                ),
                                params![id],
                                sqlite_op,
                            )
                            .optional()
                            .map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!("SELECT {OP_COLUMNS} FROM tactic_session_ops WHERE id = $1"),
                    &[&id],
                )
                .await?
                .first()
                .map(pg_op)),
        }
    }

    /// A host's poll: mark its live sessions seen at `now`, and take up to
    /// `limit` operations addressed to it (and, when `open_capacity` > 0, up
    /// to that many `open`s no host took yet, whose sessions become its
    /// own), oldest first.
    pub async fn take_session_ops(
        &self,
        host: &str,
        open_capacity: usize,
        limit: usize,
        now: UnixMillis,
    ) -> Result<Vec<SessionOpRow>, StoreError> {
        let host = Arc::new(host.to_string());
        let (opens, limit) = (open_capacity as i64, limit.max(1) as i64);
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let tx = connection.transaction().map_err(query_error)?;
                        tx.execute(
                            &format!("UPDATE tactic_sessions SET host_seen_at = ?1 WHERE host = ?2 AND state IN {LIVE}"),
                            params![now, host],
                        )
                        .map_err(query_error)?;
                        let mut taken = {
                            let mut statement = tx
                                .prepare(&format!(
                                    "UPDATE tactic_session_ops SET taken_by = ?1, taken_at = ?2
                                     WHERE id IN (SELECT id FROM tactic_session_ops WHERE taken_by IS NULL AND host = ?1 ORDER BY created_at LIMIT ?3)
                                     RETURNING {OP_COLUMNS}"
                                ))
                                .map_err(query_error)?;
                            let rows = statement
                                .query_map(params![host, now, limit], sqlite_op)
                                .map_err(query_error)?;
                            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)?
                        };
                        if opens > 0 {
                            let opened = {
                                let mut statement = tx
                                    .prepare(&format!(
                                        "UPDATE tactic_session_ops SET taken_by = ?1, taken_at = ?2, host = ?1
                                         WHERE id IN (SELECT id FROM tactic_session_ops WHERE taken_by IS NULL AND host IS NULL AND kind = 'open' ORDER BY created_at LIMIT ?3)
                                         RETURNING {OP_COLUMNS}"
                                    ))
                                    .map_err(query_error)?;
                                let rows = statement
                                    .query_map(params![host, now, opens], sqlite_op)
                                    .map_err(query_error)?;
                                rows.collect::<Result<Vec<_>, _>>().map_err(query_error)?
                            };
                            for op in &opened {
                                tx.execute(
                                    "UPDATE tactic_sessions SET host = ?1, host_seen_at = ?2 WHERE id = ?3",
                                    params![host, now, op.session_id],
                                )
                                .map_err(query_error)?;
                            }
                            taken.extend(opened);
                        }
                        tx.commit().map_err(query_error)?;
                        Ok(taken)
                    })
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .transaction(Box::new(move |tx| {
                        let host = Arc::clone(&host);
                        Box::pin(async move {
                            tx.execute(
                                &format!("UPDATE tactic_sessions SET host_seen_at = $1 WHERE host = $2 AND state IN {LIVE}"),
                                &[&now, &*host],
                            )
                            .await?;
                            let mut taken: Vec<SessionOpRow> = tx
                                .query(
                                    &format!(
                                        "UPDATE tactic_session_ops SET taken_by = $1, taken_at = $2
                                         WHERE id IN (SELECT id FROM tactic_session_ops WHERE taken_by IS NULL AND host = $1 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                                         RETURNING {OP_COLUMNS}"
                                    ),
                                    &[&*host, &now, &limit],
                                )
                                .await?
                                .iter()
                                .map(pg_op)
                                .collect();
                            if opens > 0 {
                                let opened: Vec<SessionOpRow> = tx
                                    .query(
                                        &format!(
                                            "UPDATE tactic_session_ops SET taken_by = $1, taken_at = $2, host = $1
                                             WHERE id IN (SELECT id FROM tactic_session_ops WHERE taken_by IS NULL AND host IS NULL AND kind = 'open' ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                                             RETURNING {OP_COLUMNS}"
                                        ),
                                        &[&*host, &now, &opens],
                                    )
                                    .await?
                                    .iter()
                                    .map(pg_op)
                                    .collect();
                                for op in &opened {
                                    tx.execute(
                                        "UPDATE tactic_sessions SET host = $1, host_seen_at = $2 WHERE id = $3",
                                        &[&*host, &now, &op.session_id],
                                    )
                                    .await?;
                                }
                                taken.extend(opened);
                            }
                            Ok(taken)
                        })
                    }))
                    .await
            }
        }
    }

    /// Store a host's reply to an operation it took, the proof states it
    /// made and the session's new state, in one transaction; false (nothing
    /// written) when the operation is not this host's or already answered.
    pub async fn complete_session_op(&self, done: &SessionOpDone) -> Result<bool, StoreError> {
        let done = Arc::new(done.clone());
        let now = crate::now_millis();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let tx = connection.transaction().map_err(query_error)?;
                        let session: Option<String> = tx
                            .query_row(
                                "UPDATE tactic_session_ops SET reply = ?1, done_at = ?2 WHERE id = ?3 AND taken_by = ?4 AND reply IS NULL RETURNING session_id",
                                params![done.reply, now, done.op_id, done.host],
                                |row| row.get(0),
                            )
                            .optional()
                            .map_err(query_error)?;
                        let Some(session) = session else {
                            return Ok(false);
                        };
                        for state in &done.states {
                            tx.execute(
                                "INSERT INTO tactic_session_states (session_id, state_id, parent, tactic, goals, proved) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                                 ON CONFLICT (session_id, state_id) DO NOTHING",
                                params![session, state.state_id as i64, state.parent.map(|p| p as i64), state.tactic, state.goals, state.proved as i64],
                            )
                            .map_err(query_error)?;
                        }
                        tx.execute(
                            &format!(
                                "UPDATE tactic_sessions SET states = states + ?1, tactics = tactics + ?2,
                                 state = CASE WHEN state IN {LIVE} THEN COALESCE(?3, state) ELSE state END,
                                 opened = COALESCE(?4, opened), reason = COALESCE(reason, ?5), host_seen_at = ?6
                                 WHERE id = ?7"
                            ),
                            params![done.states.len() as i64, done.tactics as i64, done.session_state, done.opened, done.reason, now, session],
                        )
                        .map_err(query_error)?;
                        tx.commit().map_err(query_error)?;
                        Ok(true)
                    })
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .transaction(Box::new(move |tx| {
                        let done = Arc::clone(&done);
                        Box::pin(async move {
                            let session: Option<String> = tx
                                .query_opt(
                                    "UPDATE tactic_session_ops SET reply = $1, done_at = $2 WHERE id = $3 AND taken_by = $4 AND reply IS NULL RETURNING session_id",
                                    &[&done.reply, &now, &done.op_id, &done.host],
                                )
                                .await?
                                .map(|row| row.get(0));
                            let Some(session) = session else {
                                return Ok(false);
                            };
                            for state in &done.states {
                                tx.execute(
                                    "INSERT INTO tactic_session_states (session_id, state_id, parent, tactic, goals, proved) VALUES ($1, $2, $3, $4, $5, $6)
                                     ON CONFLICT (session_id, state_id) DO NOTHING",
                                    &[&session, &(state.state_id as i64), &state.parent.map(|p| p as i64), &state.tactic, &state.goals, &(state.proved as i64)],
                                )
                                .await?;
                            }
                            tx.execute(
                                &format!(
                                    "UPDATE tactic_sessions SET states = states + $1, tactics = tactics + $2,
                                     state = CASE WHEN state IN {LIVE} THEN COALESCE($3, state) ELSE state END,
                                     opened = COALESCE($4, opened), reason = COALESCE(reason, $5), host_seen_at = $6
                                     WHERE id = $7"
                                ),
                                &[&(done.states.len() as i64), &(done.tactics as i64), &done.session_state, &done.opened, &done.reason, &now, &session],
                            )
                            .await?;
                            Ok(true)
                        })
                    }))
                    .await
            }
        }
    }

    /// End a live session (`closed` or `lost`, with a reason); false when it
    /// was not live.
    pub async fn end_session(
        &self,
        id: &str,
        state: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let (id, state, reason) = (id.to_string(), state.to_string(), reason.to_string());
        let changed = match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        connection
                            .execute(
                                &format!("UPDATE tactic_sessions SET state = ?1, reason = ?2 WHERE id = ?3 AND state IN {LIVE}"),
                                params![state, reason, id],
                            )
                            .map_err(query_error)
                    })
                    .await? as u64
            }
            Backend::Postgres(store) => {
                let pooled = store.connection().await?;
                pooled
                    .client()
                    .execute(
                        &format!("UPDATE tactic_sessions SET state = $1, reason = $2 WHERE id = $3 AND state IN {LIVE}"),
                        &[&state, &reason, &id],
                    )
                    .await
                    .map_err(pg_error)?
            }
        };
        Ok(changed == 1)
    }

    /// End the live sessions unused since `idle_before` (`closed`, idle) and
    /// those whose host has not polled since `silent_before` (`lost`).
    /// Returns how many of each.
    pub async fn end_stale_sessions(
        &self,
        idle_before: UnixMillis,
        silent_before: UnixMillis,
    ) -> Result<(u64, u64), StoreError> {
        let lost_sql = |p: &str| {
            format!(
                "UPDATE tactic_sessions SET state = 'lost', reason = 'the worker holding the session stopped answering'
                 WHERE state IN {LIVE} AND host IS NOT NULL AND host_seen_at < {p}1"
            )
        };
        let idle_sql = |p: &str| {
            format!(
                "UPDATE tactic_sessions SET state = 'closed', reason = 'idle timeout'
                 WHERE state = 'open' AND last_used_at < {p}1"
            )
        };
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let lost = connection
                            .execute(&lost_sql("?"), params![silent_before])
                            .map_err(query_error)?;
                        let idle = connection
                            .execute(&idle_sql("?"), params![idle_before])
                            .map_err(query_error)?;
                        Ok((idle as u64, lost as u64))
                    })
                    .await
            }
            Backend::Postgres(store) => {
                let pooled = store.connection().await?;
                let client = pooled.client();
                let lost = client
                    .execute(&lost_sql("$"), &[&silent_before])
                    .await
                    .map_err(pg_error)?;
                let idle = client
                    .execute(&idle_sql("$"), &[&idle_before])
                    .await
                    .map_err(pg_error)?;
                Ok((idle, lost))
            }
        }
    }

    /// The ids of a host's live sessions: a host frees the REPLs of every
    /// other session it holds.
    pub async fn host_sessions(&self, host: &str) -> Result<Vec<String>, StoreError> {
        let host = host.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let mut statement = connection
                            .prepare(&format!(
                                "SELECT id FROM tactic_sessions WHERE host = ?1 AND state IN {LIVE}"
                            ))
                            .map_err(query_error)?;
                        let rows = statement
                            .query_map(params![host], |row| row.get(0))
                            .map_err(query_error)?;
                        rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!("SELECT id FROM tactic_sessions WHERE host = $1 AND state IN {LIVE}"),
                    &[&host],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect()),
        }
    }
}
