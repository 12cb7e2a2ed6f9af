//! Durable state of the farm: jobs and their queue, tenants and keys, and the
//! artifact store.
//!
//! One `Store` type fronts two backends, SQLite (embedded default) and
//! PostgreSQL (at scale), chosen by URL. The queue lives in the same database
//! as the jobs, so a job and its state change together in one transaction.
//!
//! This crate knows nothing about HTTP, Lean processes or sandboxes.

pub mod artifacts;
mod postgres;
mod rows;
mod sqlite;

use leanfarm_core::{CheckRequest, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use artifacts::ArtifactStore;
pub use rows::now_millis;

/// Unix time in milliseconds; all timestamps in the store use it.
pub type UnixMillis = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store url `{0}` (expected sqlite://PATH, sqlite::memory: or postgres://...)"
    )]
    UnsupportedUrl(String),
    /// The database cannot be reached right now; the caller should retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store query failed: {0}")]
    Query(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    /// Has its one final verdict.
    Done,
    /// Gave up after `max_attempts` infrastructure failures.
    Dead,
}

/// A job as the API hands it to the store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub id: String,
    pub tenant: String,
    pub batch_id: Option<String>,
    pub request: CheckRequest,
    /// The normalised import header; workers holding a warm REPL for it are preferred.
    pub header_key: String,
    pub max_attempts: u32,
    /// Only a worker with this toolchain (by name) may run it; `None`: any.
    pub toolchain: Option<String>,
    /// Only a worker with this Lean project (by name) may run it; `None`: any.
    pub project: Option<String>,
}

/// What a claiming worker can run and holds warm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerOffer {
    /// The worker's toolchain name; jobs that require another are not leased to it.
    pub toolchain: Option<String>,
    /// The worker's project name; likewise.
    pub project: Option<String>,
    /// Headers of its warm REPLs: jobs with these headers go to it first.
    pub warm_headers: Vec<String>,
}

impl WorkerOffer {
    /// A worker with no toolchain or project named, holding these headers warm.
    pub fn warm(headers: &[&str]) -> WorkerOffer {
        WorkerOffer {
            warm_headers: headers.iter().map(|h| h.to_string()).collect(),
            ..WorkerOffer::default()
        }
    }
}

/// A worker as it last showed itself in a claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSeen {
    pub worker_id: String,
    pub toolchain: Option<String>,
    pub project: Option<String>,
    pub seen_at: UnixMillis,
}

impl WorkerSeen {
    /// Whether this worker may run a job that requires this toolchain and
    /// project (`None`: any), as a claim matches them.
    pub fn can_run(&self, toolchain: Option<&str>, project: Option<&str>) -> bool {
        toolchain.is_none_or(|name| self.toolchain.as_deref() == Some(name))
            && project.is_none_or(|name| self.project.as_deref() == Some(name))
    }
}

/// How often a worker's row is refreshed at most, per process: claims come
/// every second or so, the row needs to be only this fresh.
const WORKER_SEEN_REFRESH: Duration = Duration::from_secs(15);

/// Worker rows not refreshed for this long are deleted.
const WORKER_SEEN_KEEP_MILLIS: UnixMillis = 24 * 3600 * 1000;

/// A job as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub tenant: String,
    pub batch_id: Option<String>,
    pub state: JobState,
    pub request: CheckRequest,
    pub header_key: String,
    pub toolchain: Option<String>,
    pub project: Option<String>,
    pub result: Option<Verdict>,
    /// How many times a worker has leased it.
    pub attempts: u32,
    pub max_attempts: u32,
    /// The last infrastructure error, if any.
    pub last_error: Option<String>,
    pub created_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
}

/// A worker's claim on a running job. Only the holder of the current lease
/// may complete the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub job_id: String,
    pub lease_id: String,
    pub attempt: u32,
    pub tenant: String,
    pub request: CheckRequest,
    pub header_key: String,
    pub expires_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompleteOutcome {
    /// The verdict is now the job's one result.
    Stored,
    /// The lease was lost (expired and re-leased, or the job is already done):
    /// nothing was written.
    Stale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOutcome {
    /// Back in the queue, runnable after the backoff.
    Requeued,
    /// Out of attempts: moved to the dead-letter state.
    DeadLettered,
    /// The lease was no longer held: nothing changed.
    Stale,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    pub tenant: Option<String>,
    pub state: Option<JobState>,
    pub batch_id: Option<String>,
    /// Return jobs created after this job id (ids sort by creation time).
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub dead: u64,
}

/// What a bearer credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Submit and read checks of its tenant.
    User,
    /// Lease, heartbeat and complete jobs; nothing else.
    Worker,
    /// Everything, including tenant administration.
    Admin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant: String,
    pub scope: KeyScope,
    pub revoked: bool,
    pub created_at: UnixMillis,
}

/// Per-tenant limits enforced by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    pub max_queued: u64,
    pub max_running: u64,
    pub requests_per_second: f64,
    pub created_at: UnixMillis,
}

/// The job store and queue.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// When this process last wrote each worker's row, and with what offer.
    workers_written: Arc<Mutex<HashMap<String, (WorkerTarget, Instant)>>>,
}

type WorkerTarget = (Option<String>, Option<String>);

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl Store {
    /// Open a store by URL (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`)
    /// and apply pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url == "sqlite::memory:" {
            let store = tokio::task::spawn_blocking(|| sqlite::SqliteStore::open(":memory:"))
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))??;
            return Ok(Store::with(Backend::Sqlite(store)));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            let path = path.to_string();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))??;
            return Ok(Store::with(Backend::Sqlite(store)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Store::with(Backend::Postgres(
                postgres::PostgresStore::open(url).await?,
            )));
        }
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }

    fn with(backend: Backend) -> Store {
        Store {
            backend,
            workers_written: Arc::default(),
        }
    }

    /// Name of the backend, for logs and metrics: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Check that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.ping().await,
            Backend::Postgres(store) => store.ping().await,
        }
    }

    /// Insert jobs in the `queued` state, all in one transaction.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.enqueue(jobs).await,
            Backend::Postgres(store) => store.enqueue(jobs).await,
        }
    }

    /// Lease up to `max` runnable jobs for `worker_id` in one transaction,
    /// among those the worker's toolchain and project can run. Jobs whose
    /// header the worker holds warm go first; tenants are
    /// served fairly and never beyond their `max_running`; jobs whose lease
    /// expired are leased again. The worker and what it offers are recorded
    /// (see `workers_seen`).
    pub async fn claim(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: &WorkerOffer,
    ) -> Result<Vec<Lease>, StoreError> {
        self.record_worker(worker_id, offer).await?;
        match &self.backend {
            Backend::Sqlite(store) => store.claim(worker_id, max, lease, offer).await,
            Backend::Postgres(store) => store.claim(worker_id, max, lease, offer).await,
        }
    }

    /// Write the worker's row unless this process wrote the same offer lately.
    async fn record_worker(&self, worker_id: &str, offer: &WorkerOffer) -> Result<(), StoreError> {
        let target = (offer.toolchain.clone(), offer.project.clone());
        let now = Instant::now();
        {
            let written = self.workers_written.lock().expect("workers lock");
            if written.get(worker_id).is_some_and(|(last, at)| {
                *last == target && now.duration_since(*at) < WORKER_SEEN_REFRESH
            }) {
                return Ok(());
            }
        }
        let seen = WorkerSeen {
            worker_id: worker_id.to_string(),
            toolchain: target.0.clone(),
            project: target.1.clone(),
            seen_at: rows::now_millis(),
        };
        let forget_before = seen.seen_at - WORKER_SEEN_KEEP_MILLIS;
        match &self.backend {
            Backend::Sqlite(store) => store.record_worker(seen, forget_before).await?,
            Backend::Postgres(store) => store.record_worker(seen, forget_before).await?,
        }
        let mut written = self.workers_written.lock().expect("workers lock");
        written.retain(|_, (_, at)| now.duration_since(*at) < WORKER_SEEN_REFRESH);
        written.insert(worker_id.to_string(), (target, now));
        Ok(())
    }

    /// Workers that claimed since `since`, with what they can run.
    pub async fn workers_seen(&self, since: UnixMillis) -> Result<Vec<WorkerSeen>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.workers_seen(since).await,
            Backend::Postgres(store) => store.workers_seen(since).await,
        }
    }

    /// Extend leases still held; returns, per lease, whether it is still held.
    pub async fn renew(
        &self,
        leases: &[(String, String)],
        lease: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.renew(leases, lease).await,
            Backend::Postgres(store) => store.renew(leases, lease).await,
        }
    }

    /// Record the verdict of a leased job, once.
    pub async fn complete(
        &self,
        job_id: &str,
        lease_id: &str,
        verdict: &Verdict,
    ) -> Result<CompleteOutcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.complete(job_id, lease_id, verdict).await,
            Backend::Postgres(store) => store.complete(job_id, lease_id, verdict).await,
        }
    }

    /// Hand a job back after an infrastructure failure (never a Lean verdict):
    /// requeued after `retry_after`, or dead-lettered when out of attempts.
    pub async fn release(
        &self,
        job_id: &str,
        lease_id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.release(job_id, lease_id, error, retry_after).await,
            Backend::Postgres(store) => store.release(job_id, lease_id, error, retry_after).await,
        }
    }

    pub async fn get(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .get_many(&[job_id.to_string()])
            .await?
            .into_iter()
            .next())
    }

    /// The records of these jobs that exist, in the order asked.
    pub async fn get_many(&self, job_ids: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.get_many(job_ids).await,
            Backend::Postgres(store) => store.get_many(job_ids).await,
        }
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<JobRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.list(filter).await,
            Backend::Postgres(store) => store.list(filter).await,
        }
    }

    pub async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.queue_counts().await,
            Backend::Postgres(store) => store.queue_counts().await,
        }
    }

    /// Queued plus running jobs of one tenant (for the tenant's queue limit).
    pub async fn tenant_open_jobs(&self, tenant: &str) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.tenant_open_jobs(tenant).await,
            Backend::Postgres(store) => store.tenant_open_jobs(tenant).await,
        }
    }

    pub async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.upsert_tenant(tenant).await,
            Backend::Postgres(store) => store.upsert_tenant(tenant).await,
        }
    }

    pub async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.get_tenant(name).await,
            Backend::Postgres(store) => store.get_tenant(name).await,
        }
    }

    /// Store a key by the SHA-256 of its secret; returns its key id.
    pub async fn create_api_key(
        &self,
        tenant: &str,
        scope: KeyScope,
        secret_sha256_hex: &str,
    ) -> Result<String, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.create_api_key(tenant, scope, secret_sha256_hex).await,
            Backend::Postgres(store) => {
                store.create_api_key(tenant, scope, secret_sha256_hex).await
            }
        }
    }

    /// Look a key up by the SHA-256 of its secret (revoked keys are returned with `revoked`).
    pub async fn find_api_key(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.find_api_key(secret_sha256_hex).await,
            Backend::Postgres(store) => store.find_api_key(secret_sha256_hex).await,
        }
    }

    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.revoke_api_key(key_id).await,
            Backend::Postgres(store) => store.revoke_api_key(key_id).await,
        }
    }
}
