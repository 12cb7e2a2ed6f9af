//! The PostgreSQL backend: a small connection pool over `tokio-postgres`.
//! Every queue operation is one transaction. Claims lock the jobs they take
//! with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each
//! other's jobs; tenant counters are updated at the end of a transaction, in
//! tenant order, so that transactions rarely lock them in opposite orders.
//! A transaction that still loses a deadlock or serialization race is run
//! again; a database that cannot be reached is `StoreError::Unavailable`.

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
use futures::future::BoxFuture;
use leanfarm_core::{CheckStatus, Verdict};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Row, Socket, Transaction};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_job_requirements.sql"),
    ),
    (3, include_str!("../migrations/postgres/0003_workers.sql")),
    (
        4,
        include_str!("../migrations/postgres/0004_scoped_tokens.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_outages.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_idempotency_and_limits.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_attestations.sql"),
    ),
    (8, include_str!("../migrations/postgres/0008_prove.sql")),
    (
        9,
        include_str!("../migrations/postgres/0009_tactic_sessions.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_tenant_count_stripes.sql"),
    ),
];

/// Connections kept per store (per process).
const MAX_CONNECTIONS: usize = 16;
/// How long an operation waits for a connection before the store is unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Runs of a transaction that lost a deadlock or serialization race.
const ATTEMPTS: usize = 5;
/// A lock on the migrations, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6c65_616e_6661_726d;
/// A lock taken by every enqueue under a queue cap, so that admissions
/// count and insert one at a time across replicas.
const ADMISSION_LOCK: i64 = 0x6c66_7175_6575_6531;

#[derive(Clone)]
pub(crate) struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    /// The URL's TLS connector (`sslmode`, see `postgres_tls`); `None` for plain TCP.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<Client>>,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A connection taken from the pool; handed back on drop unless broken.
pub(crate) struct Pooled {
    client: Option<Client>,
    inner: Arc<Inner>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Pooled {
    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("pooled client")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.inner.idle.lock().expect("pool lock").push(client);
            }
        }
    }
}

/// The server's own words where it sent any ("57P03: the database system is
/// starting up"), not only the driver's "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let code = error.code().map(|code| code.code().to_string());
    match code.as_deref() {
        // A lost race (see `retryable`), connection and server shutdown
        // errors, too many connections: worth trying again later.
        Some(code)
            if retryable(&error)
                || code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300" =>
        {
            StoreError::Unavailable(describe(&error))
        }
        Some(_) => StoreError::Query(describe(&error)),
        // No SQLSTATE: the connection broke or could not be made.
        None => StoreError::Unavailable(describe(&error)),
    }
}

/// A new connection, its I/O driven by a task of its own.
async fn connect<Tls>(config: &tokio_postgres::Config, tls: Tls) -> Result<Client, StoreError>
where
    Tls: MakeTlsConnect<Socket>,
    Tls::Stream: Send + 'static,
    Tls::TlsConnect: Send,
    <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL timed out".into()))?
        .map_err(pg_error)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

fn retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code().map(|code| code.code()),
        Some("40001") | Some("40P01")
    )
}

fn read_raw(row: &Row) -> RawJob {
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get::<_, i32>(7) as u32,
        row.get::<_, i32>(8) as u32,
        row.get(9),
        row.get(10),
        row.get(11),
        row.get(12),
        row.get(13),
        row.get(14),
        row.get(15),
    )
}

fn read_key(row: &Row) -> RawKey {
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
}

/// For a worker restricted to `only_tenant`: `NotYours` if the job exists
/// and belongs to another tenant.
async fn refuse_other_tenants_job(
    tx: &Transaction<'_>,
    only_tenant: Option<&str>,
    job_id: &str,
) -> Result<(), Failure> {
    let Some(only_tenant) = only_tenant else {
        return Ok(());
    };
    let row = tx
        .query_opt("SELECT tenant FROM jobs WHERE id = $1", &[&job_id])
        .await?;
    match row.map(|row| row.get::<_, String>(0)) {
        Some(owner) if owner != only_tenant => Err(Failure::Store(StoreError::NotYours {
            job_id: job_id.to_string(),
            tenant: only_tenant.to_string(),
        })),
        _ => Ok(()),
    }
}

/// Failures inside a transaction: the database's, or the store's own.
pub(crate) enum Failure {
    Database(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        Failure::Database(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

pub(crate) type Work<T> =
    Box<dyn for<'t> Fn(&'t Transaction<'t>) -> BoxFuture<'t, Result<T, Failure>> + Send + Sync>;

/// The channel every transaction that makes jobs runnable notifies (at its
/// commit): enqueues, releases, retries of dead jobs and expired leases.
pub(crate) const WORK_CHANNEL: &str = "leanfarm_work";

/// A connection of its own that `LISTEN`s on `WORK_CHANNEL`.
pub(crate) struct WorkListener {
    _client: Client,
    notifications: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl WorkListener {
    /// The next notification; `Unavailable` once the connection is gone.
    pub(crate) async fn next(&mut self) -> Result<(), StoreError> {
        self.notifications.recv().await.ok_or_else(|| {
            StoreError::Unavailable("the connection listening for work ended".into())
        })
    }
}

/// A connection whose notifications are forwarded to a channel.
async fn listen<Tls>(config: &tokio_postgres::Config, tls: Tls) -> Result<WorkListener, StoreError>
where
    Tls: MakeTlsConnect<Socket>,
    Tls::Stream: Send + 'static,
    Tls::TlsConnect: Send,
    <Tls::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL timed out".into()))?
        .map_err(pg_error)?;
    let (sender, notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    if sender.send(()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "PostgreSQL listening connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {WORK_CHANNEL}"))
        .await
        .map_err(pg_error)?;
    Ok(WorkListener {
        _client: client,
        notifications,
    })
}

/// Tell every listening replica that jobs became runnable (sent at commit;
/// several in one transaction are one).
async fn notify_work(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_notify($1, '')", &[&WORK_CHANNEL])
        .await
        .map(|_| ())
}

impl PostgresStore {
    pub(crate) async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let target = crate::postgres_tls::target(url)?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                config: target.config,
                tls: target.tls,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A connection listening for `WORK_CHANNEL`'s notifications.
    pub(crate) async fn listen_for_work(&self) -> Result<WorkListener, StoreError> {
        match &self.inner.tls {
            None => listen(&self.inner.config, NoTls).await,
            Some(tls) => listen(&self.inner.config, tls.clone()).await,
        }
    }

    pub(crate) async fn connection(&self) -> Result<Pooled, StoreError> {
        let permit = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("no free database connection".into()))?
        .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        loop {
            let Some(client) = self.inner.idle.lock().expect("pool lock").pop() else {
                break;
            };
            if !client.is_closed() {
                return Ok(Pooled {
                    client: Some(client),
                    inner: Arc::clone(&self.inner),
                    _permit: permit,
                });
            }
        }
        let client = match &self.inner.tls {
            None => connect(&self.inner.config, NoTls).await?,
            Some(tls) => connect(&self.inner.config, tls.clone()).await?,
        };
        Ok(Pooled {
            client: Some(client),
            inner: Arc::clone(&self.inner),
            _permit: permit,
        })
    }

    /// Run `work` in a transaction, again if it loses a deadlock or
    /// serialization race.
    pub(crate) async fn transaction<T>(&self, work: Work<T>) -> Result<T, StoreError> {
        let mut pooled = self.connection().await?;
        let client = pooled.client.as_mut().expect("pooled client");
        for attempt in 1..=ATTEMPTS {
            let transaction = client.transaction().await.map_err(pg_error)?;
            let outcome = work(&transaction).await;
            let outcome = match outcome {
                Ok(value) => transaction
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(Failure::Database),
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::Database(error)) if retryable(&error) && attempt < ATTEMPTS => {
                    tracing::debug!(%error, attempt, "transaction lost a race; running it again");
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                Err(Failure::Database(error)) => return Err(pg_error(error)),
                Err(Failure::Store(error)) => return Err(error),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.transaction(Box::new(|tx| {
            Box::pin(async move {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
                tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                    .await?;
                for (version, sql) in MIGRATIONS {
                    let applied = tx.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?.is_some();
                    if applied {
                        continue;
                    }
                    tx.batch_execute(sql).await?;
                    tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", &[version, &now_millis()])
                        .await?;
                }
                Ok(())
            })
        }))
        .await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let pooled = self.connection().await?;
        let client = pooled.client.as_ref().expect("pooled client");
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(pg_error)
    }

    /// Insert the jobs, unless `rules.max_queued_jobs` is given and the
    /// queued jobs plus these would exceed it, or the tenant's open jobs
    /// plus these would exceed its `max_queued`, or the idempotency key
    /// already names a batch. Such enqueues take one advisory lock before
    /// they read, so they run one after another across processes: two
    /// batches never both fit in the same room, and two submissions with
    /// one key never both insert.
    pub(crate) async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        rules: AdmissionRules,
    ) -> Result<Admission, StoreError> {
        let rows = Arc::new(encode_requests(jobs)?);
        let rules = Arc::new(rules);
        self.transaction(Box::new(move |tx| {
            let rows = Arc::clone(&rows);
            let rules = Arc::clone(&rules);
            Box::pin(async move {
                let now = now_millis();
                if rules.max_queued_jobs.is_some() || rules.idempotency.is_some() {
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADMISSION_LOCK])
                        .await?;
                }
                if let Some(key) = &rules.idempotency {
                    if let Some(replayed) = stored_idempotency_key(tx, key, now).await? {
                        return Ok(replayed);
                    }
                }
                if let Some(limit) = rules.max_queued_jobs {
                    let queued: i64 = tx
                        .query_one("SELECT coalesce(sum(queued), 0)::BIGINT FROM tenant_queue", &[])
                        .await?
                        .get(0);
                    let queued = queued.max(0) as u64;
                    if queued.saturating_add(rows.len() as u64) > limit {
                        return Ok(Admission::QueueFull { queued, limit });
                    }
                    if let Some(full) = tenant_queue_full(tx, &rows).await? {
                        return Ok(full);
                    }
                }
                let insert = tx
                    .prepare(
                        "INSERT INTO jobs (id, tenant, batch_id, state, request, header_key, max_attempts, run_after, created_at, toolchain, project)
                         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $7, $8, $9)",
                    )
                    .await?;
                let mut per_tenant: BTreeMap<&str, i64> = BTreeMap::new();
                for (job, request) in rows.iter() {
                    let max_attempts = job.max_attempts.max(1) as i32;
                    tx.execute(&insert, &[&job.id, &job.tenant, &job.batch_id, request, &job.header_key, &max_attempts, &now, &job.toolchain, &job.project])
                        .await?;
                    *per_tenant.entry(job.tenant.as_str()).or_default() += 1;
                }
                let mut deltas = TenantDeltas::default();
                for (tenant, count) in per_tenant {
                    deltas.add(tenant, count, 0, false);
                }
                deltas.apply(tx).await?;
                if let Some(key) = &rules.idempotency {
                    tx.execute(
                        "INSERT INTO idempotency_keys (tenant, key, request_sha256, batch_id, job_ids, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[&key.tenant, &key.key, &key.request_sha256, &key.batch_id, &key.job_ids, &now, &key.expires_at],
                    )
                    .await?;
                }
                notify_work(tx).await?;
                Ok(Admission::Enqueued)
            })
        }))
        .await
    }

    pub(crate) async fn replica_heartbeat(
        &self,
        replica_id: String,
        live_millis: i64,
    ) -> Result<u64, StoreError> {
        let replica_id = Arc::new(replica_id);
        self.transaction(Box::new(move |tx| {
            let replica_id = Arc::clone(&replica_id);
            Box::pin(async move {
                let now = now_millis();
                tx.execute(
                    "INSERT INTO api_replicas (replica_id, seen_at) VALUES ($1, $2)
                     ON CONFLICT (replica_id) DO UPDATE SET seen_at = $2",
                    &[&*replica_id, &now],
                )
                .await?;
                let forget_before = now - REPLICA_FORGET_AFTER_LIVE_WINDOWS * live_millis;
                tx.execute(
                    "DELETE FROM api_replicas WHERE seen_at < $1",
                    &[&forget_before],
                )
                .await?;
                let live_since = now - live_millis;
                let live: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM api_replicas WHERE seen_at >= $1",
                        &[&live_since],
                    )
                    .await?
                    .get(0);
                Ok(live.max(1) as u64)
            })
        }))
        .await
    }

    pub(crate) async fn replica_leaving(&self, replica_id: String) -> Result<(), StoreError> {
        self.query(
            "DELETE FROM api_replicas WHERE replica_id = $1",
            &[&replica_id],
        )
        .await
        .map(|_| ())
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
        let offer: Arc<WorkerOffer> = Arc::new(offer.clone());
        let lease_millis = lease.as_millis() as i64;
        self.transaction(Box::new(move |tx| {
            let (worker_id, offer, only_tenant) =
                (worker_id.clone(), Arc::clone(&offer), only_tenant.clone());
            Box::pin(async move {
                let now = now_millis();
                observe_queue_clock(tx, now, freeze_in_outages).await?;
                let mut expired = TenantDeltas::default();
                expire_leases(tx, now, &mut expired).await?;
                // Counted now, so that the requeued jobs' tenants are candidates.
                expired.apply(tx).await?;
                let mut deltas = TenantDeltas::default();
                // Candidate tenants, fairest first; within this claim each
                // job taken counts as one more running job of its tenant.
                let mut candidates: Vec<(String, i64, i64)> = tx
                    .query(
                        "SELECT q.tenant, q.running, coalesce(t.max_running, 9223372036854775807)
                         FROM tenant_queue q LEFT JOIN tenants t ON t.name = q.tenant
                         WHERE q.queued > 0 AND (t.max_running IS NULL OR q.running < t.max_running)
                         AND ($2::TEXT IS NULL OR q.tenant = $2)
                         ORDER BY q.running, q.last_claimed, q.tenant LIMIT $1",
                        &[&((max as i64).max(1) * 4 + 16), &only_tenant],
                    )
                    .await?
                    .iter()
                    .map(|row| (row.get(0), row.get(1), row.get(2)))
                    .collect();
                let mut leases = Vec::new();
                while leases.len() < max && !candidates.is_empty() {
                    // The first candidate with the fewest running (stable: ties keep the fair order).
                    let index = (0..candidates.len()).min_by_key(|&i| candidates[i].1).expect("non-empty");
                    let tenant = candidates[index].0.clone();
                    let Some(row) = next_job(tx, &tenant, now, &offer).await? else {
                        candidates.remove(index);
                        continue;
                    };
                    candidates[index].1 += 1;
                    if candidates[index].1 >= candidates[index].2 {
                        // At its running limit: no more for this tenant in this claim.
                        candidates.remove(index);
                    }
                    let job_id: String = row.get(0);
                    let attempts = row.get::<_, i32>(1) as u32;
                    let request: String = row.get(2);
                    let header_key: String = row.get(3);
                    let lease_id = uuid::Uuid::new_v4().to_string();
                    let expires_at = now + lease_millis;
                    tx.execute(
                        "UPDATE jobs SET state = 'running', lease_id = $2, lease_owner = $3, lease_expires_at = $4,
                         attempts = attempts + 1, started_at = $5 WHERE id = $1",
                        &[&job_id, &lease_id, &worker_id, &expires_at, &now],
                    )
                    .await?;
                    deltas.add(&tenant, -1, 1, true);
                    let request = parse_request(&job_id, &request)?;
                    leases.push(Lease { job_id, lease_id, attempt: attempts + 1, tenant, request, header_key, expires_at });
                }
                deltas.apply(tx).await?;
                Ok(leases)
            })
        }))
        .await
    }

    pub(crate) async fn record_worker(
        &self,
        seen: WorkerSeen,
        forget_before: UnixMillis,
    ) -> Result<(), StoreError> {
        let seen = Arc::new(seen);
        self.transaction(Box::new(move |tx| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO workers (worker_id, toolchain, project, seen_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (worker_id) DO UPDATE SET toolchain = $2, project = $3, seen_at = $4",
                    &[&seen.worker_id, &seen.toolchain, &seen.project, &seen.seen_at],
                )
                .await?;
                tx.execute("DELETE FROM workers WHERE seen_at < $1", &[&forget_before])
                    .await?;
                Ok(())
            })
        }))
        .await
    }

    pub(crate) async fn active_workers(&self, since: UnixMillis) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM (
                    SELECT worker_id FROM workers WHERE seen_at >= $1
                    UNION
                    SELECT lease_owner FROM jobs WHERE state = 'running' AND lease_owner IS NOT NULL
                 ) AS active",
                &[&since],
            )
            .await?;
        let count: i64 = rows.first().map(|row| row.get(0)).unwrap_or(0);
        Ok(count.max(0) as u64)
    }

    pub(crate) async fn workers_seen(
        &self,
        since: UnixMillis,
    ) -> Result<Vec<WorkerSeen>, StoreError> {
        let rows = self
            .query(
                "SELECT worker_id, toolchain, project, seen_at FROM workers
                 WHERE seen_at >= $1 ORDER BY worker_id",
                &[&since],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| WorkerSeen {
                worker_id: row.get(0),
                toolchain: row.get(1),
                project: row.get(2),
                seen_at: row.get(3),
            })
            .collect())
    }

    pub(crate) async fn renew(
        &self,
        only_tenant: Option<String>,
        leases: &[(String, String)],
        lease: Duration,
        freeze_in_outages: Option<i64>,
    ) -> Result<Vec<bool>, StoreError> {
        let leases = Arc::new(leases.to_vec());
        let lease_millis = lease.as_millis() as i64;
        self.transaction(Box::new(move |tx| {
            let (leases, only_tenant) = (Arc::clone(&leases), only_tenant.clone());
            Box::pin(async move {
                let now = now_millis();
                observe_queue_clock(tx, now, freeze_in_outages).await?;
                let expires_at = now + lease_millis;
                let mut held = Vec::with_capacity(leases.len());
                for (job_id, lease_id) in leases.iter() {
                    refuse_other_tenants_job(tx, only_tenant.as_deref(), job_id).await?;
                    let changed = tx
                        .execute(
                            "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_id = $2 AND state = 'running'",
                            &[job_id, lease_id, &expires_at],
                        )
                        .await?;
                    held.push(changed == 1);
                }
                Ok(held)
            })
        }))
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
        self.transaction(Box::new(move |tx| {
            let (job_id, lease_id, result) = (job_id.clone(), lease_id.clone(), result.clone());
            let attestation = attestation.clone();
            let only_tenant = only_tenant.clone();
            Box::pin(async move {
                refuse_other_tenants_job(tx, only_tenant.as_deref(), &job_id).await?;
                let row = tx
                    .query_opt(
                        "UPDATE jobs SET state = 'done', result = $3, finished_at = $4, lease_id = NULL, lease_expires_at = NULL,
                         artifacts_owed = $5, attestation = $6 WHERE id = $1 AND lease_id = $2 AND state = 'running' RETURNING tenant",
                        &[&job_id, &lease_id, &result, &now_millis(), &owed_artifacts_column(), &attestation],
                    )
                    .await?;
                let Some(row) = row else { return Ok(CompleteOutcome::Stale) };
                let tenant: String = row.get(0);
                let mut deltas = TenantDeltas::default();
                deltas.add(&tenant, 0, -1, false);
                deltas.apply(tx).await?;
                Ok(CompleteOutcome::Stored)
            })
        }))
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
        self.transaction(Box::new(move |tx| {
            let (job_id, lease_id, error) = (job_id.clone(), lease_id.clone(), error.clone());
            let only_tenant = only_tenant.clone();
            Box::pin(async move {
                refuse_other_tenants_job(tx, only_tenant.as_deref(), &job_id).await?;
                let now = now_millis();
                let row = tx
                    .query_opt(
                        "SELECT tenant, attempts, max_attempts FROM jobs WHERE id = $1 AND lease_id = $2 AND state = 'running' FOR UPDATE",
                        &[&job_id, &lease_id],
                    )
                    .await?;
                let Some(row) = row else { return Ok(ReleaseOutcome::Stale) };
                let (tenant, attempts, max_attempts): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
                let mut deltas = TenantDeltas::default();
                let outcome = if attempts >= max_attempts {
                    tx.execute(
                        "UPDATE jobs SET state = 'dead', last_error = $2, finished_at = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
                        &[&job_id, &error, &now],
                    )
                    .await?;
                    deltas.add(&tenant, 0, -1, false);
                    ReleaseOutcome::DeadLettered
                } else {
                    tx.execute(
                        "UPDATE jobs SET state = 'queued', last_error = $2, run_after = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
                        &[&job_id, &error, &(now + retry_millis)],
                    )
                    .await?;
                    deltas.add(&tenant, 1, -1, false);
                    notify_work(tx).await?;
                    ReleaseOutcome::Requeued
                };
                deltas.apply(tx).await?;
                Ok(outcome)
            })
        }))
        .await
    }

    pub(crate) async fn jobs_owing_artifacts(
        &self,
        only_job: Option<String>,
        limit: usize,
    ) -> Result<Vec<OwedArtifacts>, StoreError> {
        let limit = limit.max(1) as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS}, artifacts_owed FROM jobs WHERE artifacts_owed IS NOT NULL AND ($1::TEXT IS NULL OR id = $1) ORDER BY id LIMIT $2"
                ),
                &[&only_job, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OwedArtifacts {
                    job: to_record(read_raw(row))?,
                    names: owed_artifact_names(row.get::<_, &str>(16)),
                })
            })
            .collect()
    }

    pub(crate) async fn artifacts_written(&self, job_id: &str) -> Result<(), StoreError> {
        self.query(
            "UPDATE jobs SET artifacts_owed = NULL WHERE id = $1",
            &[&job_id],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn retry_dead(
        &self,
        selector: DeadJobSelector,
        note: String,
    ) -> Result<Vec<String>, StoreError> {
        let (ids, batch, all): (Option<Vec<String>>, Option<String>, bool) = match selector {
            DeadJobSelector::Ids(ids) => (Some(ids), None, false),
            DeadJobSelector::Batch(batch) => (None, Some(batch), false),
            DeadJobSelector::All => (None, None, true),
        };
        let arguments = Arc::new((ids, batch, all, note));
        self.transaction(Box::new(move |tx| {
            let arguments = Arc::clone(&arguments);
            Box::pin(async move {
                let (ids, batch, all, note) = &*arguments;
                let now = now_millis();
                let rows = tx
                    .query(
                        "UPDATE jobs SET state = 'queued', attempts = 0, last_error = $4, run_after = $5, finished_at = NULL,
                         lease_id = NULL, lease_expires_at = NULL
                         WHERE id IN (
                             SELECT id FROM jobs WHERE state = 'dead'
                             AND ($3 OR id = ANY($1::TEXT[]) OR batch_id = $2::TEXT)
                             ORDER BY id FOR UPDATE
                         )
                         RETURNING id, tenant",
                        &[ids, batch, all, note, &now],
                    )
                    .await?;
                let mut retried = Vec::with_capacity(rows.len());
                let mut per_tenant: BTreeMap<String, i64> = BTreeMap::new();
                for row in &rows {
                    retried.push(row.get::<_, String>(0));
                    *per_tenant.entry(row.get(1)).or_default() += 1;
                }
                let mut deltas = TenantDeltas::default();
                for (tenant, count) in per_tenant {
                    deltas.add(&tenant, count, 0, false);
                }
                deltas.apply(tx).await?;
                if !retried.is_empty() {
                    notify_work(tx).await?;
                }
                retried.sort();
                Ok(retried)
            })
        }))
        .await
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let pooled = self.connection().await?;
        let client = pooled.client.as_ref().expect("pooled client");
        client.query(sql, params).await.map_err(pg_error)
    }

    pub(crate) async fn expired_jobs(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        let limit = limit.max(1) as i64;
        let rows = self
            .query(
                "SELECT id, tenant, state, CASE WHEN state = 'done' THEN result::jsonb ->> 'status' END AS status, finished_at
                 FROM jobs WHERE state IN ('done', 'dead') AND finished_at < GREATEST($1::BIGINT, $2::BIGINT) AND artifacts_owed IS NULL
                 AND finished_at < CASE WHEN state = 'done' AND result::jsonb ->> 'status' = 'valid' THEN $1::BIGINT ELSE $2::BIGINT END
                 ORDER BY finished_at, id LIMIT $3",
                &[&cutoffs.valid_before, &cutoffs.other_before, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredJob {
                    id: row.get(0),
                    tenant: row.get(1),
                    state: crate::rows::parse_state(row.get::<_, &str>(2))?,
                    status: row.get(3),
                    finished_at: row.get(4),
                })
            })
            .collect()
    }

    pub(crate) async fn delete_final_jobs(&self, job_ids: &[String]) -> Result<u64, StoreError> {
        let job_ids = job_ids.to_vec();
        self.transaction(Box::new(move |tx| {
            let job_ids = job_ids.clone();
            Box::pin(async move {
                let deleted = tx
                    .execute(
                        "DELETE FROM jobs WHERE id = ANY($1) AND state IN ('done', 'dead')",
                        &[&job_ids],
                    )
                    .await?;
                Ok(deleted)
            })
        }))
        .await
    }

    pub(crate) async fn get_many(&self, job_ids: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)"),
                &[&job_ids],
            )
            .await?;
        let mut by_id: BTreeMap<String, JobRecord> = BTreeMap::new();
        for row in &rows {
            let record = to_record(read_raw(row))?;
            by_id.insert(record.id.clone(), record);
        }
        Ok(job_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    pub(crate) async fn list(&self, filter: &ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        let state = filter.state.map(state_name);
        let status = filter.status.map(CheckStatus::as_str);
        let limit = filter.limit.max(1) as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::TEXT IS NULL OR tenant = $1) AND ($2::TEXT IS NULL OR state = $2)
                     AND ($3::TEXT IS NULL OR batch_id = $3) AND ($4::TEXT IS NULL OR id > $4)
                     AND ($6::TEXT IS NULL OR (state = 'done' AND result::jsonb ->> 'status' = $6)) ORDER BY id LIMIT $5"
                ),
                &[&filter.tenant, &state, &filter.batch_id, &filter.after, &limit, &status],
            )
            .await?;
        rows.iter().map(|row| to_record(read_raw(row))).collect()
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
        let rows = self
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = $1 AND tenant = $2 AND state IN ('done', 'dead')
                     AND ($3::BIGINT IS NULL OR (coalesce(finished_at, 0), id) > ($3, $4::TEXT))
                     AND ($5::BIGINT IS NULL OR coalesce(finished_at, 0) <= $5)
                     ORDER BY coalesce(finished_at, 0), id LIMIT $6"
                ),
                &[&batch_id, &tenant, &after_time, &after_id, &finished_by, &limit],
            )
            .await?;
        rows.iter().map(|row| to_record(read_raw(row))).collect()
    }

    pub(crate) async fn cancel(
        &self,
        tenant: &str,
        scope: &CancelScope,
        verdict: &Verdict,
    ) -> Result<Cancellation, StoreError> {
        let tenant = tenant.to_string();
        let (job_id, batch_id) = match scope {
            CancelScope::Job(id) => (Some(id.clone()), None::<String>),
            CancelScope::Batch(id) => (None, Some(id.clone())),
        };
        let result = encode_verdict(verdict)?;
        self.transaction(Box::new(move |tx| {
            let (tenant, job_id, batch_id, result) =
                (tenant.clone(), job_id.clone(), batch_id.clone(), result.clone());
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT id, state FROM jobs WHERE tenant = $1 AND state IN ('queued', 'running')
                         AND ($2::TEXT IS NULL OR id = $2) AND ($3::TEXT IS NULL OR batch_id = $3)
                         ORDER BY id FOR UPDATE",
                        &[&tenant, &job_id, &batch_id],
                    )
                    .await?;
                let now = now_millis();
                let mut cancellation = Cancellation::default();
                let mut deltas = TenantDeltas::default();
                for row in rows {
                    let id: String = row.get(0);
                    let state: String = row.get(1);
                    tx.execute(
                        "UPDATE jobs SET state = 'done', result = $2, finished_at = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
                        &[&id, &result, &now],
                    )
                    .await?;
                    if state == "running" {
                        cancellation.running += 1;
                        deltas.add(&tenant, 0, -1, false);
                    } else {
                        cancellation.queued += 1;
                        deltas.add(&tenant, -1, 0, false);
                    }
                    cancellation.job_ids.push(id);
                }
                deltas.apply(tx).await?;
                Ok(cancellation)
            })
        }))
        .await
    }

    pub(crate) async fn batch_counts(
        &self,
        tenant: &str,
        batch_id: &str,
    ) -> Result<BatchCounts, StoreError> {
        let rows = self
            .query(
                "SELECT state, CASE WHEN state = 'done' THEN result::jsonb ->> 'status' END, count(*)
                 FROM jobs WHERE batch_id = $1 AND tenant = $2 GROUP BY 1, 2",
                &[&batch_id, &tenant],
            )
            .await?;
        BatchCounts::from_rows(rows.iter().map(|row| {
            (
                row.get::<_, &str>(0),
                row.get::<_, Option<&str>>(1),
                row.get::<_, i64>(2) as u64,
            )
        }))
    }

    pub(crate) async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        let rows = self
            .query("SELECT state, count(*) FROM jobs GROUP BY state", &[])
            .await?;
        queue_counts(
            rows.iter()
                .map(|row| (row.get::<_, &str>(0), row.get::<_, i64>(1) as u64)),
        )
    }

    pub(crate) async fn next_due_after(&self, since: i64) -> Result<Option<i64>, StoreError> {
        let rows = self
            .query(
                "SELECT min(due) FROM (
                SELECT min(run_after) AS due FROM jobs WHERE state = 'queued' AND run_after > $1
                UNION ALL
                SELECT min(lease_expires_at) + 1 FROM jobs WHERE state = 'running' AND lease_expires_at >= $1
             ) AS due_times",
                &[&since],
            )
            .await?;
        Ok(rows.first().and_then(|row| row.get::<_, Option<i64>>(0)))
    }

    pub(crate) async fn oldest_queued_at(&self) -> Result<Option<i64>, StoreError> {
        let rows = self
            .query(
                "SELECT min(created_at) FROM jobs WHERE state = 'queued'",
                &[],
            )
            .await?;
        Ok(rows.first().and_then(|row| row.get::<_, Option<i64>>(0)))
    }

    pub(crate) async fn tenant_open_jobs(&self, tenant: &str) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT queued + running FROM tenant_queue WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok(rows
            .first()
            .map(|row| row.get::<_, i64>(0).max(0) as u64)
            .unwrap_or(0))
    }

    pub(crate) async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.query(
            "INSERT INTO tenants (name, max_queued, max_running, requests_per_second, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET max_queued = $2, max_running = $3, requests_per_second = $4",
            &[&tenant.name, &(tenant.max_queued as i64), &(tenant.max_running as i64), &tenant.requests_per_second, &tenant.created_at],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        let rows = self
            .query("SELECT name, max_queued, max_running, requests_per_second, created_at FROM tenants WHERE name = $1", &[&name])
            .await?;
        Ok(rows.first().map(|row| TenantRecord {
            name: row.get(0),
            max_queued: row.get::<_, i64>(1) as u64,
            max_running: row.get::<_, i64>(2) as u64,
            requests_per_second: row.get(3),
            created_at: row.get(4),
        }))
    }

    pub(crate) async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = self
            .query("SELECT name, max_queued, max_running, requests_per_second, created_at FROM tenants ORDER BY name", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|row| TenantRecord {
                name: row.get(0),
                max_queued: row.get::<_, i64>(1) as u64,
                max_running: row.get::<_, i64>(2) as u64,
                requests_per_second: row.get(3),
                created_at: row.get(4),
            })
            .collect())
    }

    /// Insert a key; a tenant's key only if the tenant exists, in the same
    /// statement.
    pub(crate) async fn create_key(
        &self,
        tenant: Option<String>,
        scope: KeyScope,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        let key_id = uuid::Uuid::new_v4().simple().to_string();
        let inserted = self
            .query(
                "INSERT INTO api_keys (key_id, tenant, scope, secret_sha256, created_at, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE $2::TEXT IS NULL OR EXISTS (SELECT 1 FROM tenants WHERE name = $2)
                 RETURNING 1",
                &[&key_id, &tenant, &scope_name(scope), &secret_sha256_hex, &now_millis(), &expires_at],
            )
            .await?;
        match tenant {
            Some(tenant) if inserted.is_empty() => Err(StoreError::UnknownTenant(tenant)),
            _ => Ok(key_id),
        }
    }

    pub(crate) async fn find_key(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = $1"),
                &[&secret_sha256_hex],
            )
            .await?;
        rows.first()
            .map(|row| to_key_record(read_key(row)))
            .transpose()
    }

    pub(crate) async fn list_keys(
        &self,
        tenant: Option<String>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant IS NOT DISTINCT FROM $1 ORDER BY created_at, key_id"
                ),
                &[&tenant],
            )
            .await?;
        rows.iter()
            .map(|row| to_key_record(read_key(row)))
            .collect()
    }

    pub(crate) async fn revoke_token(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<String>, StoreError> {
        let rows = self
            .query(
                "UPDATE api_keys SET revoked = true WHERE secret_sha256 = $1 RETURNING key_id",
                &[&secret_sha256_hex],
            )
            .await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "UPDATE api_keys SET revoked = true WHERE key_id = $1 RETURNING 1",
                &[&key_id],
            )
            .await?;
        Ok(rows.len() == 1)
    }
}

/// Stripes of each tenant's counts (migration 9): concurrent transactions
/// of different connections mostly add to different rows.
const TENANT_COUNT_STRIPES: i32 = 16;

/// Changes to tenant counters gathered during a transaction and applied at
/// its end, in tenant order, to the stripe of this transaction's connection
/// (no tenant has one row every claim and completion must lock).
#[derive(Default)]
struct TenantDeltas {
    by_tenant: BTreeMap<String, (i64, i64, bool)>,
}

impl TenantDeltas {
    fn add(&mut self, tenant: &str, queued: i64, running: i64, claimed: bool) {
        let entry = self.by_tenant.entry(tenant.to_string()).or_default();
        entry.0 += queued;
        entry.1 += running;
        entry.2 |= claimed;
    }

    async fn apply(self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        for (tenant, (queued, running, claimed)) in self.by_tenant {
            if !claimed && queued == 0 && running == 0 {
                continue;
            }
            tx.execute(
                "INSERT INTO tenant_counts (tenant, stripe, queued, running, last_claimed)
                 VALUES ($1, pg_backend_pid() % $5, $2, $3, CASE WHEN $4 THEN nextval('claim_counter') ELSE 0 END)
                 ON CONFLICT (tenant, stripe) DO UPDATE SET
                     queued = tenant_counts.queued + EXCLUDED.queued,
                     running = tenant_counts.running + EXCLUDED.running,
                     last_claimed = GREATEST(tenant_counts.last_claimed, EXCLUDED.last_claimed)",
                &[&tenant, &queued, &running, &claimed, &TENANT_COUNT_STRIPES],
            )
            .await?;
        }
        Ok(())
    }
}

/// Tick the queue's clock (at most once a second). After a gap longer than
/// `freeze_in_outages` milliseconds (nobody reached the store: an
/// outage), every running lease is extended by the gap, and to at least
/// the outage gap from now (time for its holder to come back after the
/// store did), so that no lease runs out because its holder could not
/// renew it. The clock's row
/// is locked and read again before it moves, so that of the transactions
/// that come back together after an outage only one extends the leases.
async fn observe_queue_clock(
    tx: &Transaction<'_>,
    now: UnixMillis,
    freeze_in_outages: Option<i64>,
) -> Result<(), tokio_postgres::Error> {
    let Some(row) = tx
        .query_opt("SELECT last_seen FROM queue_clock WHERE id = 1", &[])
        .await?
    else {
        return Ok(());
    };
    if now - row.get::<_, i64>(0) < CLOCK_RESOLUTION_MILLIS {
        return Ok(());
    }
    let Some(row) = tx
        .query_opt(
            "SELECT last_seen FROM queue_clock WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?
    else {
        return Ok(());
    };
    let last_seen: i64 = row.get(0);
    let gap = now - last_seen;
    if gap < CLOCK_RESOLUTION_MILLIS {
        return Ok(());
    }
    if let Some(outage_gap) =
        freeze_in_outages.filter(|outage_gap| last_seen > 0 && gap > *outage_gap)
    {
        let extended = tx
            .execute(
                "UPDATE jobs SET lease_expires_at = GREATEST(lease_expires_at + $1, $3)
                 WHERE state = 'running' AND lease_expires_at >= $2",
                &[&gap, &last_seen, &(now + outage_gap)],
            )
            .await?;
        tracing::warn!(
            gap_ms = gap,
            extended,
            "the queue was unreachable; running leases extended by the gap"
        );
    }
    tx.execute(
        "UPDATE queue_clock SET last_seen = $1 WHERE id = 1",
        &[&now],
    )
    .await?;
    Ok(())
}

/// Return jobs whose lease expired to the queue, or to the dead letters when
/// they have used all their attempts.
async fn expire_leases(
    tx: &Transaction<'_>,
    now: UnixMillis,
    deltas: &mut TenantDeltas,
) -> Result<(), tokio_postgres::Error> {
    let rows = tx
        .query(
            "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 last_error = CASE WHEN attempts >= max_attempts THEN 'lease expired on the last attempt' ELSE 'lease expired' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE finished_at END,
                 run_after = $1, lease_id = NULL, lease_expires_at = NULL
             WHERE id IN (
                 SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < $1
                 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1000
             )
             RETURNING tenant, state",
            &[&now],
        )
        .await?;
    for row in &rows {
        let tenant: String = row.get(0);
        let state: &str = row.get(1);
        deltas.add(&tenant, i64::from(state == "queued"), -1, false);
    }
    if rows.iter().any(|row| row.get::<_, &str>(1) == "queued") {
        notify_work(tx).await?;
    }
    Ok(())
}

/// The tenant's oldest job this worker can run, preferring a warm header;
/// locked, and skipping jobs another transaction holds.
async fn next_job(
    tx: &Transaction<'_>,
    tenant: &str,
    now: UnixMillis,
    offer: &WorkerOffer,
) -> Result<Option<Row>, tokio_postgres::Error> {
    const RUNNABLE: &str = "tenant = $1 AND state = 'queued' AND run_after <= $2
        AND (toolchain IS NULL OR toolchain = $3) AND (project IS NULL OR project = $4)";
    if !offer.warm_headers.is_empty() {
        let found = tx
            .query_opt(
                &format!(
                    "SELECT id, attempts, request, header_key FROM jobs WHERE {RUNNABLE} AND header_key = ANY($5)
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                ),
                &[&tenant, &now, &offer.toolchain, &offer.project, &offer.warm_headers],
            )
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    tx.query_opt(
        &format!("SELECT id, attempts, request, header_key FROM jobs WHERE {RUNNABLE} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"),
        &[&tenant, &now, &offer.toolchain, &offer.project],
    )
    .await
}

/// The answer a live idempotency key gives, if there is one; this key if
/// expired, and up to `EXPIRED_KEYS_PER_ADMISSION` other expired keys, are
/// deleted first.
async fn stored_idempotency_key(
    tx: &Transaction<'_>,
    key: &KeyToRecord,
    now: i64,
) -> Result<Option<Admission>, tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND expires_at <= $3",
        &[&key.tenant, &key.key, &now],
    )
    .await?;
    tx.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN
         (SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)",
        &[&now, &EXPIRED_KEYS_PER_ADMISSION],
    )
    .await?;
    let row = tx
        .query_opt(
            "SELECT request_sha256, batch_id, job_ids FROM idempotency_keys WHERE tenant = $1 AND key = $2",
            &[&key.tenant, &key.key],
        )
        .await?;
    Ok(row.map(|row| {
        KeyToRecord::replay(
            &key.request_sha256,
            row.get::<_, &str>(0),
            row.get(1),
            row.get::<_, &str>(2),
        )
    }))
}

/// `Admission::TenantQueueFull` if a tenant's open jobs plus its jobs in
/// `rows` would pass its `max_queued` (tenants without a record have none).
async fn tenant_queue_full(
    tx: &Transaction<'_>,
    rows: &[(NewJob, String)],
) -> Result<Option<Admission>, tokio_postgres::Error> {
    let mut per_tenant: BTreeMap<&str, u64> = BTreeMap::new();
    for (job, _) in rows {
        *per_tenant.entry(job.tenant.as_str()).or_default() += 1;
    }
    for (tenant, count) in per_tenant {
        let Some(limit) = tx
            .query_opt("SELECT max_queued FROM tenants WHERE name = $1", &[&tenant])
            .await?
            .map(|row| row.get::<_, i64>(0))
        else {
            continue;
        };
        let open = tx
            .query_opt(
                "SELECT queued + running FROM tenant_queue WHERE tenant = $1",
                &[&tenant],
            )
            .await?
            .map(|row| row.get::<_, i64>(0))
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
