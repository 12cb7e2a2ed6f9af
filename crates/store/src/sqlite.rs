//! The SQLite backend: one file, WAL mode, one connection used from the
//! blocking thread pool. Every queue operation is one `BEGIN IMMEDIATE`
//! transaction, so a job's state, its lease and the tenant counters change
//! together or not at all.

use crate::rows::{
    encode_requests, encode_verdict, now_millis, parse_request, queue_counts, scope_name,
    state_name, to_key_record, to_record, RawJob, RawKey, JOB_COLUMNS, KEY_COLUMNS,
};
use crate::{
    owed_artifact_names, owed_artifacts_column, AdmissionRules, DeadJobSelector, ExpiredJob,
    KeyToRecord, OwedArtifacts, RetentionCutoffs, CLOCK_RESOLUTION_MILLIS,
    EXPIRED_KEYS_PER_ADMISSION, REPLICA_FORGET_AFTER_LIVE_WINDOWS,
};
use crate::{
    Admission, BatchCounts, CancelScope, Cancellation, CompleteOutcome, JobRecord, KeyRecord,
    KeyScope, Lease, ListFilter, NewJob, QueueCounts, ReleaseOutcome, StoreError, TenantRecord,
    UnixMillis, WorkerOffer, WorkerSeen,
};
use leanfarm_core::{CheckStatus, Verdict};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_job_requirements.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_workers.sql")),
    (
        4,
        include_str!("../migrations/sqlite/0004_scoped_tokens.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_outages.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_idempotency_and_limits.sql"),
    ),
    (
        7,
        include_str!("../migrations/sqlite/0007_attestations.sql"),
    ),
    (8, include_str!("../migrations/sqlite/0008_prove.sql")),
    (
        9,
        include_str!("../migrations/sqlite/0009_tactic_sessions.sql"),
    ),
    (
        10,
        include_str!("../migrations/sqlite/0010_tenant_count_stripes.sql"),
    ),
];

#[derive(Clone)]
pub(crate) struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

pub(crate) fn query_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Query(error.to_string()),
    }
}

fn read_raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
        row.get(12)?,
        row.get(13)?,
        row.get(14)?,
        row.get(15)?,
    ))
}

impl SqliteStore {
    pub(crate) fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let connection = if path == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        }
        .map_err(query_error)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(query_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(query_error)?;
        let store = SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        };
        store.with_connection_blocking(migrate)?;
        Ok(store)
    }

    fn with_connection_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| StoreError::Unavailable("sqlite connection poisoned".into()))?;
        work(&mut connection)
    }

    /// Run `work` on the connection in the blocking thread pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.with_connection_blocking(work))
            .await
            .map_err(|error| StoreError::Unavailable(format!("store task failed: {error}")))?
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.run(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(query_error)
        })
        .await
    }

    /// Insert the jobs, unless `rules.max_queued_jobs` is given and the
    /// queued jobs plus these would exceed it, or the tenant's open jobs
    /// plus these would exceed its `max_queued`, or the idempotency key
    /// already names a batch. The immediate transaction holds SQLite's
    /// write lock from the count to the commit, so no other enqueue (of this
    /// or another process) can slip in between.
    pub(crate) async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        rules: AdmissionRules,
    ) -> Result<Admission, StoreError> {
        let rows = encode_requests(jobs)?;
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            if let Some(key) = &rules.idempotency {
                if let Some(replayed) = stored_idempotency_key(&transaction, key, now)? {
                    return Ok(replayed);
                }
            }
            if let Some(limit) = rules.max_queued_jobs {
                let queued: i64 = transaction
                    .query_row("SELECT coalesce(sum(queued), 0) FROM tenant_queue", [], |row| row.get(0))
                    .map_err(query_error)?;
                let queued = queued.max(0) as u64;
                if queued.saturating_add(rows.len() as u64) > limit {
                    return Ok(Admission::QueueFull { queued, limit });
                }
                if let Some(full) = tenant_queue_full(&transaction, &rows)? {
                    return Ok(full);
                }
            }
            {
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO jobs (id, tenant, batch_id, state, request, header_key, max_attempts, run_after, created_at, toolchain, project)
                         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
                    )
                    .map_err(query_error)?;
                let mut count = transaction
                    .prepare_cached(
                        "INSERT INTO tenant_queue (tenant, queued) VALUES (?1, 1)
                         ON CONFLICT (tenant) DO UPDATE SET queued = queued + 1",
                    )
                    .map_err(query_error)?;
                for (job, request) in &rows {
                    insert
                        .execute(params![job.id, job.tenant, job.batch_id, request, job.header_key, job.max_attempts.max(1), now, job.toolchain, job.project])
                        .map_err(query_error)?;
                    count.execute(params![job.tenant]).map_err(query_error)?;
                }
            }
            if let Some(key) = &rules.idempotency {
                transaction
                    .execute(
                        "INSERT INTO idempotency_keys (tenant, key, request_sha256, batch_id, job_ids, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![key.tenant, key.key, key.request_sha256, key.batch_id, key.job_ids, now, key.expires_at],
                    )
                    .map_err(query_error)?;
            }
            transaction.commit().map_err(query_error)?;
            Ok(Admission::Enqueued)
        })
        .await
    }

    pub(crate) async fn replica_heartbeat(
        &self,
        replica_id: String,
        live_millis: i64,
    ) -> Result<u64, StoreError> {
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error)?;
            transaction
                .execute(
                    "INSERT INTO api_replicas (replica_id, seen_at) VALUES (?1, ?2)
                     ON CONFLICT (replica_id) DO UPDATE SET seen_at = ?2",
                    params![replica_id, now],
                )
                .map_err(query_error)?;
            transaction
                .execute(
                    "DELETE FROM api_replicas WHERE seen_at < ?1",
                    params![now - REPLICA_FORGET_AFTER_LIVE_WINDOWS * live_millis],
                )
                .map_err(query_error)?;
            let live: i64 = transaction
                .query_row(
                    "SELECT count(*) FROM api_replicas WHERE seen_at >= ?1",
                    params![now - live_millis],
                    |row| row.get(0),
                )
                .map_err(query_error)?;
            transaction.commit().map_err(query_error)?;
            Ok(live.max(1) as u64)
        })
        .await
    }

    pub(crate) async fn replica_leaving(&self, replica_id: String) -> Result<(), StoreError> {
        self.run(move |connection| {
            connection
                .execute(
                    "DELETE FROM api_replicas WHERE replica_id = ?1",
                    params![replica_id],
                )
                .map_err(query_error)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn claim(
        &self,
        only_tenant: Option<String>,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: &WorkerOffer,
        freeze_in_outages: Option<i64>,
    ) -> Result<Vec<Lease>, StoreError> {
        let worker_id = worker_id.to_string();
        let offer = offer.clone();
        let lease_millis = lease.as_millis() as i64;
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            observe_queue_clock(&transaction, now, freeze_in_outages)?;
            expire_leases(&transaction, now)?;
            let mut leases = Vec::new();
            let mut skipped_tenants: Vec<String> = Vec::new();
            while leases.len() < max {
                let Some(tenant) = next_tenant(&transaction, only_tenant.as_deref(), &skipped_tenants)? else { break };
                let Some((job_id, attempts, request, header_key)) = next_job(&transaction, &tenant, now, &offer)? else {
                    // Its queued jobs are all waiting out a backoff.
                    skipped_tenants.push(tenant);
                    continue;
                };
                let lease_id = uuid::Uuid::new_v4().to_string();
                let expires_at = now + lease_millis;
                transaction
                    .prepare_cached(
                        "UPDATE jobs SET state = 'running', lease_id = ?2, lease_owner = ?3, lease_expires_at = ?4,
                         attempts = attempts + 1, started_at = ?5 WHERE id = ?1",
                    )
                    .map_err(query_error)?
                    .execute(params![job_id, lease_id, worker_id, expires_at, now])
                    .map_err(query_error)?;
                transaction
                    .prepare_cached("UPDATE tenant_queue SET queued = queued - 1, running = running + 1, last_claimed = ?2 WHERE tenant = ?1")
                    .map_err(query_error)?
                    .execute(params![tenant, claim_counter(&transaction)?])
                    .map_err(query_error)?;
                let request = parse_request(&job_id, &request)?;
                leases.push(Lease { job_id, lease_id, attempt: attempts + 1, tenant, request, header_key, expires_at });
            }
            transaction.commit().map_err(query_error)?;
            Ok(leases)
        })
        .await
    }

    pub(crate) async fn record_worker(
        &self,
        seen: WorkerSeen,
        forget_before: UnixMillis,
    ) -> Result<(), StoreError> {
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error)?;
            transaction
                .prepare_cached(
                    "INSERT INTO workers (worker_id, toolchain, project, seen_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (worker_id) DO UPDATE SET toolchain = ?2, project = ?3, seen_at = ?4",
                )
                .map_err(query_error)?
                .execute(params![seen.worker_id, seen.toolchain, seen.project, seen.seen_at])
                .map_err(query_error)?;
            transaction
                .prepare_cached("DELETE FROM workers WHERE seen_at < ?1")
                .map_err(query_error)?
                .execute(params![forget_before])
                .map_err(query_error)?;
            transaction.commit().map_err(query_error)
        })
        .await
    }

    pub(crate) async fn active_workers(&self, since: UnixMillis) -> Result<u64, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(ACTIVE_WORKERS_SQLITE)
                .map_err(query_error)?;
            let count: i64 = statement
                .query_row(params![since], |row| row.get(0))
                .map_err(query_error)?;
            Ok(count.max(0) as u64)
        })
        .await
    }

    pub(crate) async fn workers_seen(
        &self,
        since: UnixMillis,
    ) -> Result<Vec<WorkerSeen>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT worker_id, toolchain, project, seen_at FROM workers
                     WHERE seen_at >= ?1 ORDER BY worker_id",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![since], |row| {
                    Ok(WorkerSeen {
                        worker_id: row.get(0)?,
                        toolchain: row.get(1)?,
                        project: row.get(2)?,
                        seen_at: row.get(3)?,
                    })
                })
                .map_err(query_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
        })
        .await
    }

    pub(crate) async fn renew(
        &self,
        only_tenant: Option<String>,
        leases: &[(String, String)],
        lease: Duration,
        freeze_in_outages: Option<i64>,
    ) -> Result<Vec<bool>, StoreError> {
        let leases = leases.to_vec();
        let lease_millis = lease.as_millis() as i64;
        self.run(move |connection| {
            let now = now_millis();
            let expires_at = now + lease_millis;
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            observe_queue_clock(&transaction, now, freeze_in_outages)?;
            let mut held = Vec::with_capacity(leases.len());
            for (job_id, lease_id) in &leases {
                refuse_other_tenants_job(&transaction, only_tenant.as_deref(), job_id)?;
                let changed = transaction
                    .prepare_cached("UPDATE jobs SET lease_expires_at = ?3 WHERE id = ?1 AND lease_id = ?2 AND state = 'running'")
                    .map_err(query_error)?
                    .execute(params![job_id, lease_id, expires_at])
                    .map_err(query_error)?;
                held.push(changed == 1);
            }
            transaction.commit().map_err(query_error)?;
            Ok(held)
        })
        .await
    }

    pub(crate) async fn complete(
        &self,
        only_tenant: Option<String>,
        job_id: &str,
        lease_id: &str,
        verdict: &Verdict,
        attestation: Option<&str>,
    ) -> Result<CompleteOutcome, StoreError> {
        let (job_id, lease_id) = (job_id.to_string(), lease_id.to_string());
        let attestation = attestation.map(str::to_string);
        let result = encode_verdict(verdict)?;
        self.run(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            refuse_other_tenants_job(&transaction, only_tenant.as_deref(), &job_id)?;
            let tenant: Option<String> = transaction
                .prepare_cached("SELECT tenant FROM jobs WHERE id = ?1 AND lease_id = ?2 AND state = 'running'")
                .map_err(query_error)?
                .query_row(params![job_id, lease_id], |row| row.get(0))
                .optional()
                .map_err(query_error)?;
            let Some(tenant) = tenant else { return Ok(CompleteOutcome::Stale) };
            transaction
                .prepare_cached("UPDATE jobs SET state = 'done', result = ?2, finished_at = ?3, lease_id = NULL, lease_expires_at = NULL, artifacts_owed = ?4, attestation = ?5 WHERE id = ?1")
                .map_err(query_error)?
                .execute(params![job_id, result, now_millis(), owed_artifacts_column(), attestation])
                .map_err(query_error)?;
            transaction
                .prepare_cached("UPDATE tenant_queue SET running = running - 1 WHERE tenant = ?1")
                .map_err(query_error)?
                .execute(params![tenant])
                .map_err(query_error)?;
            transaction.commit().map_err(query_error)?;
            Ok(CompleteOutcome::Stored)
        })
        .await
    }

    pub(crate) async fn release(
        &self,
        only_tenant: Option<String>,
        job_id: &str,
        lease_id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        let (job_id, lease_id, error) =
            (job_id.to_string(), lease_id.to_string(), error.to_string());
        let retry_millis = retry_after.as_millis() as i64;
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            refuse_other_tenants_job(&transaction, only_tenant.as_deref(), &job_id)?;
            let row: Option<(String, u32, u32)> = transaction
                .prepare_cached("SELECT tenant, attempts, max_attempts FROM jobs WHERE id = ?1 AND lease_id = ?2 AND state = 'running'")
                .map_err(query_error)?
                .query_row(params![job_id, lease_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
                .map_err(query_error)?;
            let Some((tenant, attempts, max_attempts)) = row else { return Ok(ReleaseOutcome::Stale) };
            let outcome = if attempts >= max_attempts {
                transaction
                    .execute(
                        "UPDATE jobs SET state = 'dead', last_error = ?2, finished_at = ?3, lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
                        params![job_id, error, now],
                    )
                    .map_err(query_error)?;
                transaction.execute("UPDATE tenant_queue SET running = running - 1 WHERE tenant = ?1", params![tenant]).map_err(query_error)?;
                ReleaseOutcome::DeadLettered
            } else {
                transaction
                    .execute(
                        "UPDATE jobs SET state = 'queued', last_error = ?2, run_after = ?3, lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
                        params![job_id, error, now + retry_millis],
                    )
                    .map_err(query_error)?;
                transaction
                    .execute("UPDATE tenant_queue SET running = running - 1, queued = queued + 1 WHERE tenant = ?1", params![tenant])
                    .map_err(query_error)?;
                ReleaseOutcome::Requeued
            };
            transaction.commit().map_err(query_error)?;
            Ok(outcome)
        })
        .await
    }

    pub(crate) async fn jobs_owing_artifacts(
        &self,
        only_job: Option<String>,
        limit: usize,
    ) -> Result<Vec<OwedArtifacts>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS}, artifacts_owed FROM jobs WHERE artifacts_owed IS NOT NULL AND (?1 IS NULL OR id = ?1) ORDER BY id LIMIT ?2"
                ))
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![only_job, limit.max(1) as i64], |row| {
                    Ok((read_raw(row)?, row.get::<_, String>(16)?))
                })
                .map_err(query_error)?;
            rows.map(|row| {
                let (raw, owed) = row.map_err(query_error)?;
                Ok(OwedArtifacts { job: to_record(raw)?, names: owed_artifact_names(&owed) })
            })
            .collect()
        })
        .await
    }

    pub(crate) async fn artifacts_written(&self, job_id: &str) -> Result<(), StoreError> {
        let job_id = job_id.to_string();
        self.run(move |connection| {
            connection
                .execute(
                    "UPDATE jobs SET artifacts_owed = NULL WHERE id = ?1",
                    params![job_id],
                )
                .map(|_| ())
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn expired_jobs(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, tenant, state, CASE WHEN state = 'done' THEN json_extract(result, '$.status') END AS status, finished_at
                     FROM jobs WHERE state IN ('done', 'dead') AND finished_at < max(?1, ?2) AND artifacts_owed IS NULL
                     AND finished_at < CASE WHEN state = 'done' AND json_extract(result, '$.status') = 'valid' THEN ?1 ELSE ?2 END
                     ORDER BY finished_at, id LIMIT ?3",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![cutoffs.valid_before, cutoffs.other_before, limit.max(1) as i64], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, Option<String>>(3)?, row.get::<_, i64>(4)?))
                })
                .map_err(query_error)?;
            rows.map(|row| {
                let (id, tenant, state, status, finished_at) = row.map_err(query_error)?;
                Ok(ExpiredJob { id, tenant, state: crate::rows::parse_state(&state)?, status, finished_at })
            })
            .collect()
        })
        .await
    }

    pub(crate) async fn delete_final_jobs(&self, job_ids: &[String]) -> Result<u64, StoreError> {
        let job_ids = job_ids.to_vec();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error)?;
            let mut deleted = 0;
            for job_id in &job_ids {
                deleted += transaction
                    .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state IN ('done', 'dead')")
                    .map_err(query_error)?
                    .execute(params![job_id])
                    .map_err(query_error)? as u64;
            }
            transaction.commit().map_err(query_error)?;
            Ok(deleted)
        })
        .await
    }

    pub(crate) async fn retry_dead(
        &self,
        selector: DeadJobSelector,
        note: String,
    ) -> Result<Vec<String>, StoreError> {
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(query_error)?;
            let dead: Vec<(String, String)> = {
                let (sql, values): (&str, Vec<String>) = match &selector {
                    DeadJobSelector::Ids(ids) => ("SELECT id, tenant FROM jobs WHERE state = 'dead' AND id = ?1", ids.clone()),
                    DeadJobSelector::Batch(batch) => ("SELECT id, tenant FROM jobs WHERE state = 'dead' AND batch_id = ?1 ORDER BY id", vec![batch.clone()]),
                    DeadJobSelector::All => ("SELECT id, tenant FROM jobs WHERE state = 'dead' AND ?1 IS NOT NULL ORDER BY id", vec![String::new()]),
                };
                let mut statement = transaction.prepare_cached(sql).map_err(query_error)?;
                let mut found = Vec::new();
                for value in &values {
                    let rows = statement
                        .query_map(params![value], |row| Ok((row.get(0)?, row.get(1)?)))
                        .map_err(query_error)?;
                    for row in rows {
                        found.push(row.map_err(query_error)?);
                    }
                }
                found
            };
            for (job_id, tenant) in &dead {
                transaction
                    .prepare_cached(
                        "UPDATE jobs SET state = 'queued', attempts = 0, last_error = ?2, run_after = ?3, finished_at = NULL,
                         lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
                    )
                    .map_err(query_error)?
                    .execute(params![job_id, note, now])
                    .map_err(query_error)?;
                transaction
                    .prepare_cached(
                        "INSERT INTO tenant_queue (tenant, queued) VALUES (?1, 1)
                         ON CONFLICT (tenant) DO UPDATE SET queued = queued + 1",
                    )
                    .map_err(query_error)?
                    .execute(params![tenant])
                    .map_err(query_error)?;
            }
            transaction.commit().map_err(query_error)?;
            Ok(dead.into_iter().map(|(job_id, _)| job_id).collect())
        })
        .await
    }

    pub(crate) async fn get_many(&self, job_ids: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let job_ids = job_ids.to_vec();
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
                .map_err(query_error)?;
            let mut records = Vec::with_capacity(job_ids.len());
            for job_id in &job_ids {
                if let Some(raw) = statement
                    .query_row(params![job_id], read_raw)
                    .optional()
                    .map_err(query_error)?
                {
                    records.push(to_record(raw)?);
                }
            }
            Ok(records)
        })
        .await
    }

    pub(crate) async fn list(&self, filter: &ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        let filter = filter.clone();
        self.run(move |connection| {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR state = ?2)
                 AND (?3 IS NULL OR batch_id = ?3) AND (?4 IS NULL OR id > ?4)
                 AND (?6 IS NULL OR (state = 'done' AND json_extract(result, '$.status') = ?6)) ORDER BY id LIMIT ?5"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(query_error)?;
            let rows = statement
                .query_map(
                    params![filter.tenant, filter.state.map(state_name), filter.batch_id, filter.after, filter.limit.max(1) as i64, filter.status.map(CheckStatus::as_str)],
                    read_raw,
                )
                .map_err(query_error)?;
            rows.map(|raw| to_record(raw.map_err(query_error)?)).collect()
        })
        .await
    }

    pub(crate) async fn batch_finished(
        &self,
        tenant: String,
        batch_id: String,
        after_time: Option<i64>,
        after_id: Option<String>,
        finished_by: Option<i64>,
        limit: i64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.run(move |connection| {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = ?1 AND tenant = ?2 AND state IN ('done', 'dead')
                 AND (?3 IS NULL OR coalesce(finished_at, 0) > ?3 OR (coalesce(finished_at, 0) = ?3 AND id > ?4))
                 AND (?5 IS NULL OR coalesce(finished_at, 0) <= ?5)
                 ORDER BY coalesce(finished_at, 0), id LIMIT ?6"
            );
            let mut statement = connection.prepare_cached(&sql).map_err(query_error)?;
            let rows = statement
                .query_map(
                    params![batch_id, tenant, after_time, after_id, finished_by, limit],
                    read_raw,
                )
                .map_err(query_error)?;
            rows.map(|raw| to_record(raw.map_err(query_error)?)).collect()
        })
        .await
    }

    pub(crate) async fn cancel(
        &self,
        tenant: &str,
        scope: &CancelScope,
        verdict: &Verdict,
    ) -> Result<Cancellation, StoreError> {
        let tenant = tenant.to_string();
        let (job_id, batch_id) = match scope {
            CancelScope::Job(id) => (Some(id.clone()), None),
            CancelScope::Batch(id) => (None, Some(id.clone())),
        };
        let result = encode_verdict(verdict)?;
        self.run(move |connection| {
            let now = now_millis();
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error)?;
            let open: Vec<(String, String)> = {
                let mut select = transaction
                    .prepare_cached(
                        "SELECT id, state FROM jobs WHERE tenant = ?1 AND state IN ('queued', 'running')
                         AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR batch_id = ?3) ORDER BY id",
                    )
                    .map_err(query_error)?;
                let rows = select
                    .query_map(params![tenant, job_id, batch_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(query_error)?;
                rows.collect::<Result<_, _>>().map_err(query_error)?
            };
            let mut cancellation = Cancellation::default();
            for (id, state) in open {
                transaction
                    .prepare_cached(
                        "UPDATE jobs SET state = 'done', result = ?2, finished_at = ?3, lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
                    )
                    .map_err(query_error)?
                    .execute(params![id, result, now])
                    .map_err(query_error)?;
                let counter = if state == "running" {
                    cancellation.running += 1;
                    "UPDATE tenant_queue SET running = running - 1 WHERE tenant = ?1"
                } else {
                    cancellation.queued += 1;
                    "UPDATE tenant_queue SET queued = queued - 1 WHERE tenant = ?1"
                };
                transaction
                    .prepare_cached(counter)
                    .map_err(query_error)?
                    .execute(params![tenant])
                    .map_err(query_error)?;
                cancellation.job_ids.push(id);
            }
            transaction.commit().map_err(query_error)?;
            Ok(cancellation)
        })
        .await
    }

    pub(crate) async fn batch_counts(
        &self,
        tenant: &str,
        batch_id: &str,
    ) -> Result<BatchCounts, StoreError> {
        let (tenant, batch_id) = (tenant.to_string(), batch_id.to_string());
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT state, CASE WHEN state = 'done' THEN json_extract(result, '$.status') END, count(*)
                     FROM jobs WHERE batch_id = ?1 AND tenant = ?2 GROUP BY 1, 2",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![batch_id, tenant], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, u64>(2)?))
                })
                .map_err(query_error)?;
            let rows: Vec<(String, Option<String>, u64)> = rows.collect::<Result<_, _>>().map_err(query_error)?;
            BatchCounts::from_rows(rows.iter().map(|(state, status, count)| (state.as_str(), status.as_deref(), *count)))
        })
        .await
    }

    pub(crate) async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        self.run(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state")
                .map_err(query_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
                })
                .map_err(query_error)?;
            let rows: Vec<(String, u64)> = rows.collect::<Result<_, _>>().map_err(query_error)?;
            queue_counts(rows.iter().map(|(state, count)| (state.as_str(), *count)))
        })
        .await
    }

    pub(crate) async fn next_due_after(&self, since: i64) -> Result<Option<i64>, StoreError> {
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT min(due) FROM (
                SELECT min(run_after) AS due FROM jobs WHERE state = 'queued' AND run_after > ?1
                UNION ALL
                SELECT min(lease_expires_at) + 1 FROM jobs WHERE state = 'running' AND lease_expires_at >= ?1
             ) AS due_times",
                    [since],
                    |row| row.get::<_, Option<i64>>(0),
                )
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn oldest_queued_at(&self) -> Result<Option<i64>, StoreError> {
        self.run(|connection| {
            connection
                .query_row(
                    "SELECT min(created_at) FROM jobs WHERE state = 'queued'",
                    [],
                    |row| row.get::<_, Option<i64>>(0),
                )
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn tenant_open_jobs(&self, tenant: &str) -> Result<u64, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT queued + running FROM tenant_queue WHERE tenant = ?1",
                    params![tenant],
                    |row| row.get::<_, u64>(0),
                )
                .optional()
                .map(|count| count.unwrap_or(0))
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO tenants (name, max_queued, max_running, requests_per_second, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (name) DO UPDATE SET max_queued = ?2, max_running = ?3, requests_per_second = ?4",
                    params![tenant.name, tenant.max_queued as i64, tenant.max_running as i64, tenant.requests_per_second, tenant.created_at],
                )
                .map(|_| ())
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        let name = name.to_string();
        self.run(move |connection| {
            connection
                .query_row("SELECT name, max_queued, max_running, requests_per_second, created_at FROM tenants WHERE name = ?1", params![name], |row| {
                    Ok(TenantRecord {
                        name: row.get(0)?,
                        max_queued: row.get::<_, i64>(1)? as u64,
                        max_running: row.get::<_, i64>(2)? as u64,
                        requests_per_second: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })
                .optional()
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.run(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT name, max_queued, max_running, requests_per_second, created_at FROM tenants ORDER BY name")
                .map_err(query_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(TenantRecord {
                        name: row.get(0)?,
                        max_queued: row.get::<_, i64>(1)? as u64,
                        max_running: row.get::<_, i64>(2)? as u64,
                        requests_per_second: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })
                .map_err(query_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
        })
        .await
    }

    /// Insert a key; a tenant's key only if the tenant exists, in the same
    /// transaction.
    pub(crate) async fn create_key(
        &self,
        tenant: Option<String>,
        scope: KeyScope,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        let secret = secret_sha256_hex.to_string();
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(query_error)?;
            if let Some(tenant) = &tenant {
                let known = transaction
                    .query_row("SELECT 1 FROM tenants WHERE name = ?1", params![tenant], |_| Ok(()))
                    .optional()
                    .map_err(query_error)?
                    .is_some();
                if !known {
                    return Err(StoreError::UnknownTenant(tenant.clone()));
                }
            }
            let key_id = uuid::Uuid::new_v4().simple().to_string();
            transaction
                .execute(
                    "INSERT INTO api_keys (key_id, tenant, scope, secret_sha256, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![key_id, tenant, scope_name(scope), secret, now_millis(), expires_at],
                )
                .map_err(query_error)?;
            transaction.commit().map_err(query_error)?;
            Ok(key_id)
        })
        .await
    }

    pub(crate) async fn find_key(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let secret = secret_sha256_hex.to_string();
        self.run(move |connection| {
            let raw = connection
                .query_row(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?1"),
                    params![secret],
                    read_key,
                )
                .optional()
                .map_err(query_error)?;
            raw.map(to_key_record).transpose()
        })
        .await
    }

    pub(crate) async fn list_keys(
        &self,
        tenant: Option<String>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant IS ?1 ORDER BY created_at, key_id"
                ))
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![tenant], read_key)
                .map_err(query_error)?;
            rows.map(|raw| to_key_record(raw.map_err(query_error)?))
                .collect()
        })
        .await
    }

    pub(crate) async fn revoke_token(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<String>, StoreError> {
        let secret = secret_sha256_hex.to_string();
        self.run(move |connection| {
            connection
                .query_row(
                    "UPDATE api_keys SET revoked = 1 WHERE secret_sha256 = ?1 RETURNING key_id",
                    params![secret],
                    |row| row.get(0),
                )
                .optional()
                .map_err(query_error)
        })
        .await
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let key_id = key_id.to_string();
        self.run(move |connection| {
            connection
                .execute(
                    "UPDATE api_keys SET revoked = 1 WHERE key_id = ?1",
                    params![key_id],
                )
                .map(|changed| changed == 1)
                .map_err(query_error)
        })
        .await
    }
}

fn read_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawKey> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

/// For a worker restricted to `only_tenant`: `NotYours` if the job exists
/// and belongs to another tenant.
fn refuse_other_tenants_job(
    transaction: &Transaction<'_>,
    only_tenant: Option<&str>,
    job_id: &str,
) -> Result<(), StoreError> {
    let Some(only_tenant) = only_tenant else {
        return Ok(());
    };
    let owner: Option<String> = transaction
        .prepare_cached("SELECT tenant FROM jobs WHERE id = ?1")
        .map_err(query_error)?
        .query_row(params![job_id], |row| row.get(0))
        .optional()
        .map_err(query_error)?;
    match owner {
        Some(owner) if owner != only_tenant => Err(StoreError::NotYours {
            job_id: job_id.to_string(),
            tenant: only_tenant.to_string(),
        }),
        _ => Ok(()),
    }
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(query_error)?;
    transaction
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .map_err(query_error)?;
    for (version, sql) in MIGRATIONS {
        let applied: bool = transaction
            .query_row(
                "SELECT count(*) FROM schema_migrations WHERE version = ?1",
                params![version],
                |row| row.get::<_, i64>(0),
            )
            .map_err(query_error)?
            > 0;
        if applied {
            continue;
        }
        transaction.execute_batch(sql).map_err(query_error)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, now_millis()],
            )
            .map_err(query_error)?;
    }
    transaction.commit().map_err(query_error)
}

/// Tick the queue's clock (at most once a second). After a gap longer than
/// `freeze_in_outages` milliseconds (nobody reached the store: an
/// outage), every running lease is extended by the gap, and to at least
/// the outage gap from now (time for its holder to come back after the
/// store did), so that no lease runs out because its holder could not
/// renew it.
fn observe_queue_clock(
    transaction: &Transaction<'_>,
    now: UnixMillis,
    freeze_in_outages: Option<i64>,
) -> Result<(), StoreError> {
    let last_seen: Option<i64> = transaction
        .prepare_cached("SELECT last_seen FROM queue_clock WHERE id = 1")
        .map_err(query_error)?
        .query_row([], |row| row.get(0))
        .optional()
        .map_err(query_error)?;
    let Some(last_seen) = last_seen else {
        return Ok(());
    };
    let gap = now - last_seen;
    if gap < CLOCK_RESOLUTION_MILLIS {
        return Ok(());
    }
    if let Some(outage_gap) =
        freeze_in_outages.filter(|outage_gap| last_seen > 0 && gap > *outage_gap)
    {
        let extended = transaction
            .prepare_cached(
                "UPDATE jobs SET lease_expires_at = max(lease_expires_at + ?1, ?3)
                 WHERE state = 'running' AND lease_expires_at >= ?2",
            )
            .map_err(query_error)?
            .execute(params![gap, last_seen, now + outage_gap])
            .map_err(query_error)?;
        tracing::warn!(
            gap_ms = gap,
            extended,
            "the queue was unreachable; running leases extended by the gap"
        );
    }
    transaction
        .prepare_cached("UPDATE queue_clock SET last_seen = ?1 WHERE id = 1")
        .map_err(query_error)?
        .execute(params![now])
        .map_err(query_error)?;
    Ok(())
}

/// Return jobs whose lease expired to the queue, or to the dead letters when
/// they have used all their attempts.
fn expire_leases(transaction: &Transaction<'_>, now: UnixMillis) -> Result<(), StoreError> {
    let expired: Vec<(String, String, u32, u32)> = {
        let mut statement = transaction
            .prepare_cached("SELECT id, tenant, attempts, max_attempts FROM jobs WHERE state = 'running' AND lease_expires_at < ?1")
            .map_err(query_error)?;
        let rows = statement
            .query_map(params![now], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(query_error)?;
        rows.collect::<Result<_, _>>().map_err(query_error)?
    };
    for (job_id, tenant, attempts, max_attempts) in expired {
        if attempts >= max_attempts {
            transaction
                .execute(
                    "UPDATE jobs SET state = 'dead', last_error = 'lease expired on the last attempt', finished_at = ?2, lease_id = NULL WHERE id = ?1",
                    params![job_id, now],
                )
                .map_err(query_error)?;
            transaction
                .execute(
                    "UPDATE tenant_queue SET running = running - 1 WHERE tenant = ?1",
                    params![tenant],
                )
                .map_err(query_error)?;
        } else {
            transaction
                .execute(
                    "UPDATE jobs SET state = 'queued', last_error = 'lease expired', run_after = ?2, lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
                    params![job_id, now],
                )
                .map_err(query_error)?;
            transaction.execute("UPDATE tenant_queue SET running = running - 1, queued = queued + 1 WHERE tenant = ?1", params![tenant]).map_err(query_error)?;
        }
    }
    Ok(())
}

/// The tenant to serve next: fewest running jobs, then least recently
/// served, among those below their running limit.
/// With `only_tenant`, that tenant or none.
fn next_tenant(
    transaction: &Transaction<'_>,
    only_tenant: Option<&str>,
    skipped: &[String],
) -> Result<Option<String>, StoreError> {
    let mut statement = transaction
        .prepare_cached(
            "SELECT q.tenant FROM tenant_queue q LEFT JOIN tenants t ON t.name = q.tenant
             WHERE q.queued > 0 AND (t.max_running IS NULL OR q.running < t.max_running)
             AND (?2 IS NULL OR q.tenant = ?2)
             ORDER BY q.running, q.last_claimed, q.tenant LIMIT ?1",
        )
        .map_err(query_error)?;
    let rows = statement
        .query_map(params![skipped.len() as i64 + 1, only_tenant], |row| {
            row.get::<_, String>(0)
        })
        .map_err(query_error)?;
    for row in rows {
        let tenant = row.map_err(query_error)?;
        if !skipped.contains(&tenant) {
            return Ok(Some(tenant));
        }
    }
    Ok(None)
}

/// The tenant's oldest job this worker can run, preferring a warm header.
fn next_job(
    transaction: &Transaction<'_>,
    tenant: &str,
    now: UnixMillis,
    offer: &WorkerOffer,
) -> Result<Option<(String, u32, String, String)>, StoreError> {
    let read = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
    const RUNNABLE: &str = "tenant = ?1 AND state = 'queued' AND run_after <= ?2
        AND (toolchain IS NULL OR toolchain = ?3) AND (project IS NULL OR project = ?4)";
    for header in &offer.warm_headers {
        let found = transaction
            .prepare_cached(&format!(
                "SELECT id, attempts, request, header_key FROM jobs WHERE {RUNNABLE} AND header_key = ?5 ORDER BY id LIMIT 1"
            ))
            .map_err(query_error)?
            .query_row(params![tenant, now, offer.toolchain, offer.project, header], read)
            .optional()
            .map_err(query_error)?;
        if found.is_some() {
            return Ok(found);
        }
    }
    transaction
        .prepare_cached(&format!("SELECT id, attempts, request, header_key FROM jobs WHERE {RUNNABLE} ORDER BY id LIMIT 1"))
        .map_err(query_error)?
        .query_row(params![tenant, now, offer.toolchain, offer.project], read)
        .optional()
        .map_err(query_error)
}

/// A number that grows with every claim, for "least recently served".
fn claim_counter(transaction: &Transaction<'_>) -> Result<i64, StoreError> {
    transaction
        .query_row(
            "SELECT coalesce(max(last_claimed), 0) + 1 FROM tenant_queue",
            [],
            |row| row.get(0),
        )
        .map_err(query_error)
}

/// The answer a live idempotency key gives, if there is one; this key if
/// expired, and up to `EXPIRED_KEYS_PER_ADMISSION` other expired keys, are
/// deleted first.
fn stored_idempotency_key(
    transaction: &Transaction<'_>,
    key: &KeyToRecord,
    now: i64,
) -> Result<Option<Admission>, StoreError> {
    transaction
        .execute(
            "DELETE FROM idempotency_keys WHERE tenant = ?1 AND key = ?2 AND expires_at <= ?3",
            params![key.tenant, key.key, now],
        )
        .map_err(query_error)?;
    transaction
        .execute(
            "DELETE FROM idempotency_keys WHERE rowid IN
             (SELECT rowid FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
            params![now, EXPIRED_KEYS_PER_ADMISSION],
        )
        .map_err(query_error)?;
    let stored: Option<(String, String, String)> = transaction
        .query_row(
            "SELECT request_sha256, batch_id, job_ids FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
            params![key.tenant, key.key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(query_error)?;
    Ok(stored.map(|(stored_sha256, batch_id, job_ids)| {
        KeyToRecord::replay(&key.request_sha256, &stored_sha256, batch_id, &job_ids)
    }))
}

/// `Admission::TenantQueueFull` if a tenant's open jobs plus its jobs in
/// `rows` would pass its `max_queued` (tenants without a record have none).
fn tenant_queue_full(
    transaction: &Transaction<'_>,
    rows: &[(NewJob, String)],
) -> Result<Option<Admission>, StoreError> {
    let mut per_tenant: std::collections::BTreeMap<&str, u64> = Default::default();
    for (job, _) in rows {
        *per_tenant.entry(job.tenant.as_str()).or_default() += 1;
    }
    for (tenant, count) in per_tenant {
        let limit: Option<i64> = transaction
            .query_row(
                "SELECT max_queued FROM tenants WHERE name = ?1",
                params![tenant],
                |row| row.get(0),
            )
            .optional()
            .map_err(query_error)?;
        let Some(limit) = limit else { continue };
        let open: i64 = transaction
            .query_row(
                "SELECT queued + running FROM tenant_queue WHERE tenant = ?1",
                params![tenant],
                |row| row.get(0),
            )
            .optional()
            .map_err(query_error)?
            .unwrap_or(0);
        let (open, limit) = (open.max(0) as u64, limit.max(0) as u64);
        if open.saturating_add(count) > limit {
            return Ok(Some(Admission::TenantQueueFull {
                tenant: tenant.to_string(),
                open,
                limit,
            }));
        }
    }
    Ok(None)
}
/// Workers that claimed since ?1, or hold a running job's lease, once each.
const ACTIVE_WORKERS_SQLITE: &str = "SELECT COUNT(*) FROM (
    SELECT worker_id FROM workers WHERE seen_at >= ?1
    UNION
    SELECT lease_owner FROM jobs WHERE state = 'running' AND lease_owner IS NOT NULL)";
