//! Prove jobs, their attempts and the tenants' daily model usage, on both
//! backends. The store keeps the request, usage and attempts as JSON text
//! it does not read: their shape belongs to the prove crate.
//!
//! A running prove job is driven by the replica holding its lease
//! (`lease_owner`, `lease_expires_at`); every write of a driver names its
//! owner and changes nothing once the lease is lost or the job is final.

use crate::postgres::{pg_error, PostgresStore};
use crate::sqlite::query_error;
use crate::{Backend, Store, StoreError, UnixMillis};
use rusqlite::{params, OptionalExtension};

/// A prove job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ProveJobRow {
    pub id: String,
    pub tenant: String,
    /// `running`, `proved`, `exhausted`, `failed` or `cancelled`.
    pub state: String,
    /// The request, as JSON.
    pub request: String,
    /// The usage so far, as JSON.
    pub usage: String,
    pub proof: Option<String>,
    pub reason: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
}

/// One attempt of a prove job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ProveAttemptRow {
    pub job_id: String,
    pub round: u32,
    pub candidate: u32,
    pub check_id: String,
    /// The attempt, as JSON.
    pub attempt: String,
}

/// How a prove job ends (`Store::finish_prove_job`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProveEnd {
    pub state: String,
    pub proof: Option<String>,
    pub reason: Option<String>,
    pub usage: String,
}

const JOB_COLUMNS: &str =
    "id, tenant, state, request, usage, proof, reason, created_at, updated_at, finished_at";

fn sqlite_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProveJobRow> {
    Ok(ProveJobRow {
        id: row.get(0)?,
        tenant: row.get(1)?,
        state: row.get(2)?,
        request: row.get(3)?,
        usage: row.get(4)?,
        proof: row.get(5)?,
        reason: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        finished_at: row.get(9)?,
    })
}

fn pg_job(row: &tokio_postgres::Row) -> ProveJobRow {
    ProveJobRow {
        id: row.get(0),
        tenant: row.get(1),
        state: row.get(2),
        request: row.get(3),
        usage: row.get(4),
        proof: row.get(5),
        reason: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        finished_at: row.get(9),
    }
}

fn sqlite_attempt(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProveAttemptRow> {
    Ok(ProveAttemptRow {
        job_id: row.get(0)?,
        round: row.get::<_, i64>(1)? as u32,
        candidate: row.get::<_, i64>(2)? as u32,
        check_id: row.get(3)?,
        attempt: row.get(4)?,
    })
}

fn pg_attempt(row: &tokio_postgres::Row) -> ProveAttemptRow {
    ProveAttemptRow {
        job_id: row.get(0),
        round: row.get::<_, i64>(1) as u32,
        candidate: row.get::<_, i64>(2) as u32,
        check_id: row.get(3),
        attempt: row.get(4),
    }
}

/// The day (since the Unix epoch, UTC) of a time.
pub fn day_of(millis: UnixMillis) -> i64 {
    millis.div_euclid(86_400_000)
}

impl Store {
    /// Store a new running prove job, leased to `owner` until `lease_until`.
    pub async fn create_prove_job(
        &self,
        job: &ProveJobRow,
        owner: &str,
        lease_until: UnixMillis,
    ) -> Result<(), StoreError> {
        let job = job.clone();
        let owner = owner.to_string();
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            &format!("INSERT INTO prove_jobs ({JOB_COLUMNS}, lease_owner, lease_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                            params![job.id, job.tenant, job.state, job.request, job.usage, job.proof, job.reason, job.created_at, job.updated_at, job.finished_at, owner, lease_until],
                        )
                        .map(|_| ())
                        .map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => pg_execute(store,
                &format!("INSERT INTO prove_jobs ({JOB_COLUMNS}, lease_owner, lease_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
                &[&job.id, &job.tenant, &job.state, &job.request, &job.usage, &job.proof, &job.reason, &job.created_at, &job.updated_at, &job.finished_at, &owner, &lease_until],
            ).await.map(|_| ()),
        }
    }

    pub async fn get_prove_job(&self, id: &str) -> Result<Option<ProveJobRow>, StoreError> {
        let id = id.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        connection
                            .query_row(
                                &format!("SELECT {JOB_COLUMNS} FROM prove_jobs WHERE id = ?1"),
                                params![id],
                                sqlite_job,
                            )
                            .optional()
                            .map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!("SELECT {JOB_COLUMNS} FROM prove_jobs WHERE id = $1"),
                    &[&id],
                )
                .await?
                .first()
                .map(pg_job)),
        }
    }

    /// How many prove jobs of the tenant are running.
    pub async fn running_prove_jobs(&self, tenant: &str) -> Result<u64, StoreError> {
        let tenant = tenant.to_string();
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .query_row(
                            "SELECT count(*) FROM prove_jobs WHERE tenant = ?1 AND state = 'running'",
                            params![tenant],
                            |row| row.get::<_, i64>(0),
                        )
                        .map(|count| count as u64)
                        .map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => Ok(store
                .query(
                    "SELECT count(*) FROM prove_jobs WHERE tenant = $1 AND state = 'running'",
                    &[&tenant],
                )
                .await?
                .first()
                .map_or(0, |row| row.get::<_, i64>(0) as u64)),
        }
    }

    /// Lease to `owner` up to `limit` running prove jobs whose lease ran
    /// out before `now` (their replica stopped), oldest first.
    pub async fn lease_prove_jobs(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<ProveJobRow>, StoreError> {
        let owner = owner.to_string();
        let limit = limit as i64;
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    let mut statement = connection
                        .prepare(&format!(
                            "UPDATE prove_jobs SET lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3
                             WHERE id IN (SELECT id FROM prove_jobs WHERE state = 'running' AND lease_expires_at < ?3 ORDER BY id LIMIT ?4)
                             RETURNING {JOB_COLUMNS}"
                        ))
                        .map_err(query_error)?;
                    let rows = statement
                        .query_map(params![owner, lease_until, now, limit], sqlite_job)
                        .map_err(query_error)?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!(
                        "UPDATE prove_jobs SET lease_owner = $1, lease_expires_at = $2, updated_at = $3
                         WHERE id IN (SELECT id FROM prove_jobs WHERE state = 'running' AND lease_expires_at < $3 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
                         RETURNING {JOB_COLUMNS}"
                    ),
                    &[&owner, &lease_until, &now, &limit],
                )
                .await?
                .iter()
                .map(pg_job)
                .collect()),
        }
    }

    /// Extend `owner`'s lease (and store the usage so far); false when the
    /// job is no longer running or no longer `owner`'s.
    pub async fn renew_prove_job(
        &self,
        id: &str,
        owner: &str,
        lease_until: UnixMillis,
        usage: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (id, owner, usage) = (id.to_string(), owner.to_string(), usage.map(str::to_string));
        let now = crate::now_millis();
        let changed = match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "UPDATE prove_jobs SET lease_expires_at = ?1, usage = COALESCE(?2, usage), updated_at = ?3
                             WHERE id = ?4 AND lease_owner = ?5 AND state = 'running'",
                            params![lease_until, usage, now, id, owner],
                        )
                        .map_err(query_error)
                })
                .await? as u64,
            Backend::Postgres(store) => pg_execute(store,
                "UPDATE prove_jobs SET lease_expires_at = $1, usage = COALESCE($2, usage), updated_at = $3
                 WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
                &[&lease_until, &usage, &now, &id, &owner],
            ).await?,
        };
        Ok(changed == 1)
    }

    /// End `owner`'s running job; false (nothing written) when it is no
    /// longer running or no longer `owner`'s.
    pub async fn finish_prove_job(
        &self,
        id: &str,
        owner: &str,
        end: &ProveEnd,
    ) -> Result<bool, StoreError> {
        let (id, owner, end) = (id.to_string(), owner.to_string(), end.clone());
        let now = crate::now_millis();
        let changed = match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "UPDATE prove_jobs SET state = ?1, proof = ?2, reason = ?3, usage = ?4, updated_at = ?5, finished_at = ?5,
                             lease_owner = NULL, lease_expires_at = 0
                             WHERE id = ?6 AND lease_owner = ?7 AND state = 'running'",
                            params![end.state, end.proof, end.reason, end.usage, now, id, owner],
                        )
                        .map_err(query_error)
                })
                .await? as u64,
            Backend::Postgres(store) => pg_execute(store,
                "UPDATE prove_jobs SET state = $1, proof = $2, reason = $3, usage = $4, updated_at = $5, finished_at = $5,
                 lease_owner = NULL, lease_expires_at = 0
                 WHERE id = $6 AND lease_owner = $7 AND state = 'running'",
                &[&end.state, &end.proof, &end.reason, &end.usage, &now, &id, &owner],
            ).await?,
        };
        Ok(changed == 1)
    }

    /// Cancel the tenant's running prove job: `None` when the tenant has no
    /// job of this id, `Some(false)` when it had already ended.
    pub async fn cancel_prove_job(
        &self,
        tenant: &str,
        id: &str,
        reason: &str,
    ) -> Result<Option<bool>, StoreError> {
        let Some(job) = self.get_prove_job(id).await? else {
            return Ok(None);
        };
        if job.tenant != tenant {
            return Ok(None);
        }
        let (id, reason) = (id.to_string(), reason.to_string());
        let now = crate::now_millis();
        let changed = match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "UPDATE prove_jobs SET state = 'cancelled', reason = ?1, updated_at = ?2, finished_at = ?2,
                             lease_owner = NULL, lease_expires_at = 0 WHERE id = ?3 AND state = 'running'",
                            params![reason, now, id],
                        )
                        .map_err(query_error)
                })
                .await? as u64,
            Backend::Postgres(store) => pg_execute(store,
                "UPDATE prove_jobs SET state = 'cancelled', reason = $1, updated_at = $2, finished_at = $2,
                 lease_owner = NULL, lease_expires_at = 0 WHERE id = $3 AND state = 'running'",
                &[&reason, &now, &id],
            ).await?,
        };
        Ok(Some(changed == 1))
    }

    /// Record an attempt unless its round and candidate are recorded;
    /// returns the recorded row and whether it is this one.
    pub async fn insert_prove_attempt(
        &self,
        row: &ProveAttemptRow,
    ) -> Result<(ProveAttemptRow, bool), StoreError> {
        let insert = row.clone();
        let now = crate::now_millis();
        let (round, candidate) = (row.round as i64, row.candidate as i64);
        let inserted = match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "INSERT INTO prove_attempts (job_id, round, candidate, check_id, attempt, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT DO NOTHING",
                            params![insert.job_id, round, candidate, insert.check_id, insert.attempt, now],
                        )
                        .map_err(query_error)
                })
                .await? as u64,
            Backend::Postgres(store) => pg_execute(store,
                "INSERT INTO prove_attempts (job_id, round, candidate, check_id, attempt, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                &[&insert.job_id, &round, &candidate, &insert.check_id, &insert.attempt, &now],
            ).await?,
        };
        if inserted == 1 {
            return Ok((row.clone(), true));
        }
        let recorded = self
            .prove_attempts(&row.job_id)
            .await?
            .into_iter()
            .find(|stored| stored.round == row.round && stored.candidate == row.candidate)
            .ok_or_else(|| {
                StoreError::Corrupt("an attempt vanished after its insert conflicted".into())
            })?;
        Ok((recorded, false))
    }

    /// Replace an attempt's JSON (its verdict came).
    pub async fn update_prove_attempt(&self, row: &ProveAttemptRow) -> Result<(), StoreError> {
        let row = row.clone();
        let now = crate::now_millis();
        let (round, candidate) = (row.round as i64, row.candidate as i64);
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "UPDATE prove_attempts SET attempt = ?1, updated_at = ?2 WHERE job_id = ?3 AND round = ?4 AND candidate = ?5",
                            params![row.attempt, now, row.job_id, round, candidate],
                        )
                        .map(|_| ())
                        .map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => pg_execute(store,
                "UPDATE prove_attempts SET attempt = $1, updated_at = $2 WHERE job_id = $3 AND round = $4 AND candidate = $5",
                &[&row.attempt, &now, &row.job_id, &round, &candidate],
            ).await.map(|_| ()),
        }
    }

    /// A job's attempts by round and candidate.
    pub async fn prove_attempts(&self, job_id: &str) -> Result<Vec<ProveAttemptRow>, StoreError> {
        let job_id = job_id.to_string();
        const SELECT: &str =
            "SELECT job_id, round, candidate, check_id, attempt FROM prove_attempts";
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |connection| {
                        let mut statement = connection
                            .prepare(&format!(
                                "{SELECT} WHERE job_id = ?1 ORDER BY round, candidate"
                            ))
                            .map_err(query_error)?;
                        let rows = statement
                            .query_map(params![job_id], sqlite_attempt)
                            .map_err(query_error)?;
                        rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
                    })
                    .await
            }
            Backend::Postgres(store) => Ok(store
                .query(
                    &format!("{SELECT} WHERE job_id = $1 ORDER BY round, candidate"),
                    &[&job_id],
                )
                .await?
                .iter()
                .map(pg_attempt)
                .collect()),
        }
    }

    /// Add model tokens and cost to a tenant's day.
    pub async fn add_tenant_model_usage(
        &self,
        tenant: &str,
        day: i64,
        tokens: u64,
        cost: f64,
    ) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        let tokens = tokens as i64;
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .execute(
                            "INSERT INTO prove_tenant_days (tenant, day, tokens, cost) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (tenant, day) DO UPDATE SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost",
                            params![tenant, day, tokens, cost],
                        )
                        .map(|_| ())
                        .map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => pg_execute(store,
                "INSERT INTO prove_tenant_days (tenant, day, tokens, cost) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, day) DO UPDATE SET tokens = prove_tenant_days.tokens + excluded.tokens, cost = prove_tenant_days.cost + excluded.cost",
                &[&tenant, &day, &tokens, &cost],
            ).await.map(|_| ()),
        }
    }

    /// A tenant's model tokens and cost on a day.
    pub async fn tenant_model_usage(
        &self,
        tenant: &str,
        day: i64,
    ) -> Result<(u64, f64), StoreError> {
        let tenant = tenant.to_string();
        match &self.backend {
            Backend::Sqlite(store) => store
                .run(move |connection| {
                    connection
                        .query_row(
                            "SELECT tokens, cost FROM prove_tenant_days WHERE tenant = ?1 AND day = ?2",
                            params![tenant, day],
                            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, f64>(1)?)),
                        )
                        .optional()
                        .map(Option::unwrap_or_default)
                        .map_err(query_error)
                })
                .await,
            Backend::Postgres(store) => Ok(store
                .query(
                    "SELECT tokens, cost FROM prove_tenant_days WHERE tenant = $1 AND day = $2",
                    &[&tenant, &day],
                )
                .await?
                .first()
                .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, f64>(1)))
                .unwrap_or_default()),
        }
    }
}

async fn pg_execute(
    store: &PostgresStore,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let pooled = store.connection().await?;
    let client = pooled.client();
    client.execute(sql, params).await.map_err(pg_error)
}
