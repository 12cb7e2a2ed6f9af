//! Durable state of the farm: jobs and their queue, tenants and keys, and the
//! artifact store.
//!
//! One `Store` type fronts two backends, SQLite (embedded default) and
//! PostgreSQL (at scale), chosen by URL. The queue lives in the same database
//! as the jobs, so a job and its state change together in one transaction.
//!
//! Tokens: every token is a `user`, `worker` or `operator` token and belongs
//! either to one tenant or to the farm (`KeyOwner`). Operator tokens are
//! made only by `create_operator_key`, which only `leanfarm tenant` calls; a
//! worker acting for one tenant (`WorkerAuthority::Tenant`) can lease,
//! renew, complete and release only that tenant's jobs.
//!
//! This crate knows nothing about HTTP, Lean processes or sandboxes; it never
//! holds a token itself, only the SHA-256 of one.

mod activity;
pub mod artifacts;
mod postgres;
mod postgres_tls;
mod prove;
mod rows;
mod sessions;
mod sqlite;

use leanfarm_core::{CheckRequest, CheckStatus, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use activity::{BatchListFilter, BatchSummary, FinishedCount, TenantOpenJobs};
pub use artifacts::{ArtifactError, ArtifactSettings, ArtifactStore};
pub use prove::{day_of, ProveAttemptRow, ProveEnd, ProveJobRow};
pub use rows::now_millis;
pub use sessions::{NewSession, SessionOpDone, SessionOpRow, SessionRow, SessionStateRow};

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
    /// A tenant name that is not a short slug (see `validate_tenant_name`).
    #[error("invalid tenant name `{0}`: expected 1 to 63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit")]
    InvalidTenantName(String),
    /// A key was asked for a tenant the store does not know.
    #[error("no tenant `{0}`: create it first (`leanfarm tenant set {0}`)")]
    UnknownTenant(String),
    /// A worker acting for one tenant touched another tenant's job; nothing
    /// was changed.
    #[error("job {job_id} does not belong to tenant {tenant}")]
    NotYours { job_id: String, tenant: String },
}

/// Longest tenant name, in characters.
pub const MAX_TENANT_NAME_CHARS: usize = 63;

/// Check that a tenant name is a short slug: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn validate_tenant_name(name: &str) -> Result<(), StoreError> {
    let mut characters = name.chars();
    let starts_well = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    let rest_is_slug = characters.all(|character| {
        character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || character == '_'
            || character == '-'
    });
    if starts_well && rest_is_slug && name.len() <= MAX_TENANT_NAME_CHARS {
        Ok(())
    } else {
        Err(StoreError::InvalidTenantName(name.to_string()))
    }
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
    /// The verdict's signed attestation (`leanfarm-attest`'s canonical JSON
    /// envelope), when the worker that stored it signed it.
    pub attestation: Option<String>,
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
    /// Only jobs with a verdict of this status (so only `done` jobs).
    pub status: Option<CheckStatus>,
    /// Return jobs created after this job id (ids sort by creation time).
    pub after: Option<String>,
    pub limit: usize,
}

/// A place in the order in which a batch's jobs finished: the finish time
/// and id of the last job read (`Store::batch_finished`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedCursor {
    pub finished_at: UnixMillis,
    pub job_id: String,
}

/// Which open jobs `Store::cancel` cancels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelScope {
    /// One job.
    Job(String),
    /// Every open job of one batch.
    Batch(String),
}

/// What `Store::cancel` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cancellation {
    /// The jobs cancelled, by id, oldest first.
    pub job_ids: Vec<String>,
    /// How many of them were queued (never ran).
    pub queued: u64,
    /// How many were running: their lease is gone, so their worker learns at
    /// its next renewal that it no longer holds the job, and stops the check.
    pub running: u64,
}

/// How far one batch has got: its jobs by state, and its verdicts by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Every job of the batch.
    pub total: u64,
    pub states: QueueCounts,
    /// The verdicts so far by status (statuses with none are absent).
    pub statuses: std::collections::BTreeMap<CheckStatus, u64>,
}

impl BatchCounts {
    /// Whether every job of the batch is final (`done` or `dead`).
    pub fn all_final(&self) -> bool {
        self.states.done + self.states.dead == self.total
    }

    /// Build from `(state, verdict status if any, count)` rows.
    pub(crate) fn from_rows<'a>(
        rows: impl IntoIterator<Item = (&'a str, Option<&'a str>, u64)>,
    ) -> Result<BatchCounts, StoreError> {
        let mut counts = BatchCounts::default();
        for (state, status, count) in rows {
            counts.total += count;
            match rows::parse_state(state)? {
                JobState::Queued => counts.states.queued += count,
                JobState::Running => counts.states.running += count,
                JobState::Done => counts.states.done += count,
                JobState::Dead => counts.states.dead += count,
            }
            if let Some(status) = status {
                let status = CheckStatus::ALL
                    .into_iter()
                    .find(|known| known.as_str() == status)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown verdict status `{status}`"))
                    })?;
                *counts.statuses.entry(status).or_default() += count;
            }
        }
        Ok(counts)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub dead: u64,
}

/// What a bearer credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Submit and read checks of its tenant. Always belongs to a tenant.
    User,
    /// Lease, heartbeat, complete and release jobs: every tenant's when it
    /// belongs to the farm, only its tenant's when it belongs to a tenant.
    Worker,
    /// The farm itself. Always belongs to the farm; made only by
    /// `Store::create_operator_key`, never through the API.
    Operator,
}

impl KeyScope {
    /// The farm-wide `admin` scope of old, now `Operator`; kept so that code
    /// written against the old scopes still compiles while it moves over.
    #[allow(non_upper_case_globals)]
    pub const Admin: KeyScope = KeyScope::Operator;
}

/// The scopes a tenant's own key may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantKeyScope {
    User,
    Worker,
}

impl From<TenantKeyScope> for KeyScope {
    fn from(scope: TenantKeyScope) -> KeyScope {
        match scope {
            TenantKeyScope::User => KeyScope::User,
            TenantKeyScope::Worker => KeyScope::Worker,
        }
    }
}

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOwner {
    /// The farm (stored as a NULL tenant, so no tenant name can stand for it).
    Farm,
    Tenant(String),
}

/// Whose jobs a worker may lease, renew, complete and release.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerAuthority {
    /// Every tenant's: the farm's own workers.
    Farm,
    /// Only this tenant's.
    Tenant(String),
}

impl WorkerAuthority {
    /// The one tenant this worker is restricted to, if any.
    fn tenant(&self) -> Option<&str> {
        match self {
            WorkerAuthority::Farm => None,
            WorkerAuthority::Tenant(tenant) => Some(tenant),
        }
    }
}

/// A token as the store keeps it (never the token itself).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub key_id: String,
    pub owner: KeyOwner,
    pub scope: KeyScope,
    pub revoked: bool,
    pub created_at: UnixMillis,
    /// After this time the token no longer authenticates; `None`: never expires.
    pub expires_at: Option<UnixMillis>,
}

impl KeyRecord {
    /// Whether the token has expired at `now`.
    pub fn is_expired_at(&self, now: UnixMillis) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }

    /// What this token may do on the worker API: a worker token acts for its
    /// owner, an operator token for the farm; a user token may not.
    pub fn worker_authority(&self) -> Option<WorkerAuthority> {
        match (self.scope, &self.owner) {
            (KeyScope::User, _) => None,
            (KeyScope::Operator, _) | (KeyScope::Worker, KeyOwner::Farm) => {
                Some(WorkerAuthority::Farm)
            }
            (KeyScope::Worker, KeyOwner::Tenant(tenant)) => {
                Some(WorkerAuthority::Tenant(tenant.clone()))
            }
        }
    }
}

/// What a token lookup found.
#[derive(Clone, Debug, PartialEq)]
pub enum Authentication {
    /// A live token: not revoked, not expired.
    Valid(KeyRecord),
    /// No token has this digest.
    Unknown,
    Revoked(KeyRecord),
    Expired(KeyRecord),
}

/// A token as `Store::find_api_key` reports it, in the shape of the old
/// farm-wide model: the farm's tokens have an empty tenant, and an expired
/// token is reported as revoked. Superseded by `Store::authenticate`.
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

/// What `Store::enqueue_within` and `Store::admit` did with a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Every job of the batch is queued.
    Enqueued,
    /// Nothing was written: `queued` jobs were waiting, and the batch would
    /// have taken the queue past `limit`.
    QueueFull { queued: u64, limit: u64 },
    /// Nothing was written: the tenant had `open` jobs (queued or running),
    /// and the batch would have taken them past the tenant's `max_queued`.
    TenantQueueFull {
        tenant: String,
        open: u64,
        limit: u64,
    },
    /// Nothing was written: the idempotency key already admitted this same
    /// request, as this batch with these jobs (in order).
    Replayed {
        batch_id: String,
        job_ids: Vec<String>,
    },
    /// Nothing was written: the idempotency key already admitted another
    /// request (its body's SHA-256 differs).
    KeyReused,
}

/// A submission's idempotency key (one tenant's): the first request with it
/// admits a batch; a later one with the same body gets that batch back,
/// until the key expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    /// SHA-256 (hex) of the request body.
    pub request_sha256: String,
    /// How long the key is kept after the batch it admitted.
    pub keep_for: Duration,
}

/// A replica's row is deleted once it is this many live windows old.
pub(crate) const REPLICA_FORGET_AFTER_LIVE_WINDOWS: i64 = 10;

/// Expired idempotency keys deleted by one admission with a key, at most,
/// so that the sweep never holds the admission lock for long.
pub(crate) const EXPIRED_KEYS_PER_ADMISSION: i64 = 100;

/// The default of `IdempotencyKey::keep_for`: 24 hours.
pub const DEFAULT_IDEMPOTENCY_KEEP: Duration = Duration::from_secs(24 * 3600);

/// An idempotency key as the enqueue transaction hands it to a backend.
#[derive(Clone, Debug)]
pub(crate) struct KeyToRecord {
    pub tenant: String,
    pub key: String,
    pub request_sha256: String,
    pub batch_id: String,
    /// The batch's job ids, separated by spaces.
    pub job_ids: String,
    pub expires_at: UnixMillis,
}

impl KeyToRecord {
    fn new(jobs: &[NewJob], key: &IdempotencyKey) -> Result<KeyToRecord, StoreError> {
        let first = jobs
            .first()
            .ok_or_else(|| StoreError::Query("an idempotent batch needs a job".into()))?;
        let batch_id = first
            .batch_id
            .clone()
            .ok_or_else(|| StoreError::Query("an idempotent batch needs a batch id".into()))?;
        if jobs.iter().any(|job| job.tenant != first.tenant) {
            return Err(StoreError::Query(
                "an idempotent batch belongs to one tenant".into(),
            ));
        }
        Ok(KeyToRecord {
            tenant: first.tenant.clone(),
            key: key.key.clone(),
            request_sha256: key.request_sha256.clone(),
            batch_id,
            job_ids: jobs
                .iter()
                .map(|job| job.id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            expires_at: now_millis() + key.keep_for.as_millis() as i64,
        })
    }

    /// What a stored key means for a request with this body digest.
    pub(crate) fn replay(
        request_sha256: &str,
        stored_sha256: &str,
        batch_id: String,
        job_ids: &str,
    ) -> Admission {
        if request_sha256 != stored_sha256 {
            return Admission::KeyReused;
        }
        Admission::Replayed {
            batch_id,
            job_ids: job_ids.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// The limits an enqueue transaction checks, and the key it records.
#[derive(Clone, Debug)]
pub(crate) struct AdmissionRules {
    /// The farm's cap on queued jobs; `None`: no cap (and no tenant cap).
    pub max_queued_jobs: Option<u64>,
    pub idempotency: Option<KeyToRecord>,
}

/// How the queue treats attempts and outages; `leanfarm serve` sets it from
/// its settings (`Store::with_queue_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Attempts every job admitted by this store gets (a lease that expires
    /// or a release after a failure of the farm uses one); `None` keeps each
    /// `NewJob`'s own `max_attempts`.
    pub max_attempts: Option<u32>,
    /// Whether a lease that runs out while the store could not be reached
    /// (an outage: no claim or renewal reached the store for
    /// `outage_gap`) expires and uses an attempt like any other. When
    /// false, the queue's clock stops during the outage: every running
    /// lease is extended by the gap, so its holder can still renew it or
    /// store its verdict (and at least `outage_gap` from the store's return).
    pub count_expiry_during_outage: bool,
    /// No claim or renewal reaching the store for this long is an outage.
    /// Workers claim or renew several times a second while a farm is up.
    pub outage_gap: Duration,
}

impl Default for QueuePolicy {
    fn default() -> QueuePolicy {
        QueuePolicy {
            max_attempts: None,
            count_expiry_during_outage: false,
            outage_gap: DEFAULT_OUTAGE_GAP,
        }
    }
}

/// The default of `QueuePolicy::outage_gap`.
pub const DEFAULT_OUTAGE_GAP: Duration = Duration::from_secs(15);

/// The queue's clock is written at most this often (milliseconds).
const CLOCK_RESOLUTION_MILLIS: i64 = 1000;

/// A job in the artifacts outbox: its verdict is stored, these artifacts
/// are not yet written.
#[derive(Clone, Debug, PartialEq)]
pub struct OwedArtifacts {
    pub job: JobRecord,
    /// Names of the artifacts owed (`artifacts::VERDICT_ARTIFACTS`).
    pub names: Vec<String>,
}

/// How the outbox column lists the artifacts a stored verdict owes.
fn owed_artifacts_column() -> String {
    artifacts::VERDICT_ARTIFACTS.join(" ")
}

/// The names of an outbox column.
fn owed_artifact_names(column: &str) -> Vec<String> {
    column.split_whitespace().map(str::to_string).collect()
}

/// Until when final jobs are kept (`Store::expired_jobs`): a job that
/// finished before its cutoff has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// For jobs whose verdict is `valid` (proofs).
    pub valid_before: UnixMillis,
    /// For every other final job: other verdicts, cancelled and dead jobs.
    pub other_before: UnixMillis,
}

/// A final job past its retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpiredJob {
    pub id: String,
    pub tenant: String,
    pub state: JobState,
    /// The verdict's status, for a `done` job.
    pub status: Option<String>,
    pub finished_at: UnixMillis,
}

/// Which dead-lettered jobs `Store::retry_dead` puts back in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadJobSelector {
    /// These jobs (those of them that are dead).
    Ids(Vec<String>),
    /// The dead jobs of one batch.
    Batch(String),
    /// Every dead job.
    All,
}

/// The job store and queue.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    policy: QueuePolicy,
    /// When this process last wrote each worker's row, and with what offer.
    workers_written: Arc<Mutex<HashMap<String, (WorkerTarget, Instant)>>>,
}

type WorkerTarget = (Option<String>, Option<String>);

/// A subscription to the store's notifications that jobs became runnable
/// (`Store::work_notifications`).
pub struct WorkNotifications {
    listener: postgres::WorkListener,
}

impl WorkNotifications {
    /// Wait for the next notification (several close together may arrive
    /// as one); `Unavailable` once the listening connection is lost, after
    /// which notifications may have been missed.
    pub async fn next(&mut self) -> Result<(), StoreError> {
        self.listener.next().await
    }
}

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
            policy: QueuePolicy::default(),
            workers_written: Arc::default(),
        }
    }

    /// This store with `policy` for the jobs it admits and the leases it expires.
    pub fn with_queue_policy(mut self, policy: QueuePolicy) -> Store {
        self.policy = policy;
        self
    }

    /// The policy this store applies.
    pub fn queue_policy(&self) -> QueuePolicy {
        self.policy
    }

    /// The jobs with the store's `max_attempts`, when the policy sets one.
    fn admitted(&self, mut jobs: Vec<NewJob>) -> Vec<NewJob> {
        if let Some(max_attempts) = self.policy.max_attempts {
            for job in &mut jobs {
                job.max_attempts = max_attempts;
            }
        }
        jobs
    }

    /// After how long without a claim or renewal the running leases are
    /// extended by the gap (`None`: never, expiries count).
    fn freeze_leases_in_outages(&self) -> Option<i64> {
        (!self.policy.count_expiry_during_outage)
            .then_some(self.policy.outage_gap.as_millis() as i64)
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

    /// Insert jobs in the `queued` state, all in one transaction, with no
    /// limit on the queue's length.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<(), StoreError> {
        let rules = AdmissionRules {
            max_queued_jobs: None,
            idempotency: None,
        };
        match &self.backend {
            Backend::Sqlite(store) => store.enqueue(self.admitted(jobs), rules).await.map(|_| ()),
            Backend::Postgres(store) => store.enqueue(self.admitted(jobs), rules).await.map(|_| ()),
        }
    }

    /// Insert jobs in the `queued` state, all or none, only if the queued
    /// jobs (of every tenant) plus these stay within `max_queued_jobs`. The
    /// count and the insert are one transaction, and capped enqueues of every
    /// process sharing the store are serialised, so concurrent batches never
    /// take the queue past the cap. Jobs handed back to the queue by a
    /// worker (release, expired lease) are not admissions and are not capped.
    ///
    /// The tenant's own `max_queued` (its open jobs: queued and running) is
    /// checked in the same transaction, under the same serialisation, so it
    /// holds exactly too.
    pub async fn enqueue_within(
        &self,
        jobs: Vec<NewJob>,
        max_queued_jobs: u64,
    ) -> Result<Admission, StoreError> {
        self.admit(jobs, max_queued_jobs, None).await
    }

    /// `enqueue_within`, with an idempotency key of the batch's tenant: if
    /// the key is live and names a batch admitted for the same body, nothing
    /// is written and that batch is returned (`Admission::Replayed`); with
    /// another body, `Admission::KeyReused`; otherwise the key is recorded
    /// in the transaction that queues the jobs, so two submissions racing
    /// with one key (from any processes) admit one batch. Expired keys are
    /// deleted as this runs. The jobs must be one tenant's and one batch's.
    pub async fn admit(
        &self,
        jobs: Vec<NewJob>,
        max_queued_jobs: u64,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Admission, StoreError> {
        let jobs = self.admitted(jobs);
        let idempotency = match idempotency {
            Some(key) => Some(KeyToRecord::new(&jobs, key)?),
            None => None,
        };
        let rules = AdmissionRules {
            max_queued_jobs: Some(max_queued_jobs),
            idempotency,
        };
        match &self.backend {
            Backend::Sqlite(store) => store.enqueue(jobs, rules).await,
            Backend::Postgres(store) => store.enqueue(jobs, rules).await,
        }
    }

    /// Record that the API replica `replica_id` is alive now, forget
    /// replicas silent for much longer than `live_within`, and return how
    /// many replicas (this one included) were seen within `live_within`.
    pub async fn replica_heartbeat(
        &self,
        replica_id: &str,
        live_within: Duration,
    ) -> Result<u64, StoreError> {
        let replica_id = replica_id.to_string();
        let live_millis = live_within.as_millis() as i64;
        match &self.backend {
            Backend::Sqlite(store) => store.replica_heartbeat(replica_id, live_millis).await,
            Backend::Postgres(store) => store.replica_heartbeat(replica_id, live_millis).await,
        }
    }

    /// Remove an API replica's row (it is shutting down).
    pub async fn replica_leaving(&self, replica_id: &str) -> Result<(), StoreError> {
        let replica_id = replica_id.to_string();
        match &self.backend {
            Backend::Sqlite(store) => store.replica_leaving(replica_id).await,
            Backend::Postgres(store) => store.replica_leaving(replica_id).await,
        }
    }

    /// Lease up to `max` runnable jobs for `worker_id` in one transaction,
    /// among those the worker's toolchain and project can run and, for a
    /// worker acting for one tenant, only that tenant's. Jobs whose header
    /// the worker holds warm go first; tenants are served fairly and never
    /// beyond their `max_running`; jobs whose lease expired are leased again.
    /// The worker and what it offers are recorded (see `workers_seen`).
    pub async fn claim_as(
        &self,
        authority: &WorkerAuthority,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: &WorkerOffer,
    ) -> Result<Vec<Lease>, StoreError> {
        self.record_worker(worker_id, offer).await?;
        let only_tenant = authority.tenant().map(str::to_string);
        let freeze = self.freeze_leases_in_outages();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .claim(only_tenant, worker_id, max, lease, offer, freeze)
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .claim(only_tenant, worker_id, max, lease, offer, freeze)
                    .await
            }
        }
    }

    /// `claim_as` for the farm's own workers (every tenant's jobs).
    pub async fn claim(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: &WorkerOffer,
    ) -> Result<Vec<Lease>, StoreError> {
        self.claim_as(&WorkerAuthority::Farm, worker_id, max, lease, offer)
            .await
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

    /// Workers active now: those that claimed since `since`, and those
    /// holding the lease of a running job (a busy worker claims nothing
    /// until a slot frees), each counted once.
    pub async fn active_workers(&self, since: UnixMillis) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.active_workers(since).await,
            Backend::Postgres(store) => store.active_workers(since).await,
        }
    }

    /// Extend leases still held; returns, per lease, whether it is still
    /// held. A worker acting for one tenant that names another tenant's job
    /// gets `StoreError::NotYours` and no lease is extended.
    pub async fn renew_as(
        &self,
        authority: &WorkerAuthority,
        leases: &[(String, String)],
        lease: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let only_tenant = authority.tenant().map(str::to_string);
        let freeze = self.freeze_leases_in_outages();
        match &self.backend {
            Backend::Sqlite(store) => store.renew(only_tenant, leases, lease, freeze).await,
            Backend::Postgres(store) => store.renew(only_tenant, leases, lease, freeze).await,
        }
    }

    /// `renew_as` for the farm's own workers.
    pub async fn renew(
        &self,
        leases: &[(String, String)],
        lease: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.renew_as(&WorkerAuthority::Farm, leases, lease).await
    }

    /// Record the verdict of a leased job, once. A worker acting for one
    /// tenant gets `StoreError::NotYours` for another tenant's job, even with
    /// that job's current lease id, and nothing is written.
    pub async fn complete_as(
        &self,
        authority: &WorkerAuthority,
        job_id: &str,
        lease_id: &str,
        verdict: &Verdict,
    ) -> Result<CompleteOutcome, StoreError> {
        self.complete_attested_as(authority, job_id, lease_id, verdict, None)
            .await
    }

    /// `complete_as`, storing the verdict's signed attestation (its JSON
    /// text, kept byte for byte) in the same transaction.
    pub async fn complete_attested_as(
        &self,
        authority: &WorkerAuthority,
        job_id: &str,
        lease_id: &str,
        verdict: &Verdict,
        attestation: Option<&str>,
    ) -> Result<CompleteOutcome, StoreError> {
        let only_tenant = authority.tenant().map(str::to_string);
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .complete(only_tenant, job_id, lease_id, verdict, attestation)
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .complete(only_tenant, job_id, lease_id, verdict, attestation)
                    .await
            }
        }
    }

    /// `complete_as` for the farm's own workers.
    pub async fn complete(
        &self,
        job_id: &str,
        lease_id: &str,
        verdict: &Verdict,
    ) -> Result<CompleteOutcome, StoreError> {
        self.complete_as(&WorkerAuthority::Farm, job_id, lease_id, verdict)
            .await
    }

    /// Hand a job back after an infrastructure failure (never a Lean verdict):
    /// requeued after `retry_after`, or dead-lettered when out of attempts.
    /// A worker acting for one tenant gets `StoreError::NotYours` for another
    /// tenant's job, and nothing changes.
    pub async fn release_as(
        &self,
        authority: &WorkerAuthority,
        job_id: &str,
        lease_id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        let only_tenant = authority.tenant().map(str::to_string);
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .release(only_tenant, job_id, lease_id, error, retry_after)
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .release(only_tenant, job_id, lease_id, error, retry_after)
                    .await
            }
        }
    }

    /// `release_as` for the farm's own workers.
    pub async fn release(
        &self,
        job_id: &str,
        lease_id: &str,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        self.release_as(&WorkerAuthority::Farm, job_id, lease_id, error, retry_after)
            .await
    }

    /// Jobs whose verdict is stored but whose artifacts are not yet written
    /// (the outbox), with the artifacts each owes, oldest first; with
    /// `only_job`, that job if it owes any.
    pub async fn jobs_owing_artifacts(
        &self,
        only_job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OwedArtifacts>, StoreError> {
        let only_job = only_job.map(str::to_string);
        match &self.backend {
            Backend::Sqlite(store) => store.jobs_owing_artifacts(only_job, limit).await,
            Backend::Postgres(store) => store.jobs_owing_artifacts(only_job, limit).await,
        }
    }

    /// The artifacts of this job are written: clear its mark in the outbox.
    pub async fn artifacts_written(&self, job_id: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.artifacts_written(job_id).await,
            Backend::Postgres(store) => store.artifacts_written(job_id).await,
        }
    }

    /// Final jobs (`done` or `dead`) past their retention, oldest first, at
    /// most `limit`: those with a `valid` verdict that finished before
    /// `valid_before`, the others that finished before `other_before`.
    /// Jobs that still owe artifacts (the outbox) are never expired.
    pub async fn expired_jobs(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.expired_jobs(cutoffs, limit).await,
            Backend::Postgres(store) => store.expired_jobs(cutoffs, limit).await,
        }
    }

    /// Delete these jobs' rows, only those that are final (a job that is
    /// queued or running is never deleted); returns how many were deleted.
    /// Deleting a job already gone is not an error, so replicas sweeping
    /// at once do no harm.
    pub async fn delete_final_jobs(&self, job_ids: &[String]) -> Result<u64, StoreError> {
        if job_ids.is_empty() {
            return Ok(0);
        }
        match &self.backend {
            Backend::Sqlite(store) => store.delete_final_jobs(job_ids).await,
            Backend::Postgres(store) => store.delete_final_jobs(job_ids).await,
        }
    }

    /// Put dead-lettered jobs back in the queue with a fresh set of attempts,
    /// recording `reason` as their last error (`retried: <reason>`), in one
    /// transaction; returns the ids of the jobs put back. Jobs that are not
    /// dead are left alone.
    pub async fn retry_dead(
        &self,
        selector: &DeadJobSelector,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let note = format!("retried: {reason}");
        match &self.backend {
            Backend::Sqlite(store) => store.retry_dead(selector.clone(), note).await,
            Backend::Postgres(store) => store.retry_dead(selector.clone(), note).await,
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

    /// One tenant's final (`done` or `dead`) jobs of one batch in the order
    /// they finished, `(finished_at, id)`: those after `after`, and, with
    /// `finished_by`, only those that finished at or before that time; at
    /// most `limit`. The event stream of a batch reads its verdicts so.
    pub async fn batch_finished(
        &self,
        tenant: &str,
        batch_id: &str,
        after: Option<&FinishedCursor>,
        finished_by: Option<UnixMillis>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let (tenant, batch_id) = (tenant.to_string(), batch_id.to_string());
        let (after_time, after_id) = match after {
            Some(cursor) => (Some(cursor.finished_at), Some(cursor.job_id.clone())),
            None => (None, None),
        };
        let limit = limit.max(1) as i64;
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .batch_finished(tenant, batch_id, after_time, after_id, finished_by, limit)
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .batch_finished(tenant, batch_id, after_time, after_id, finished_by, limit)
                    .await
            }
        }
    }

    /// Cancel the tenant's open (queued or running) jobs in `scope`, in one
    /// transaction: each becomes `done` with `verdict` (a `cancelled`
    /// verdict), and a running job's lease is cleared, so that its worker's
    /// next renewal finds the lease no longer held and its late result is
    /// refused as stale. Final jobs and other tenants' jobs are untouched.
    pub async fn cancel(
        &self,
        tenant: &str,
        scope: &CancelScope,
        verdict: &Verdict,
    ) -> Result<Cancellation, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.cancel(tenant, scope, verdict).await,
            Backend::Postgres(store) => store.cancel(tenant, scope, verdict).await,
        }
    }

    /// One tenant's batch: its jobs by state and its verdicts by status;
    /// `None` when the tenant has no job in a batch of this id.
    pub async fn batch_counts(
        &self,
        tenant: &str,
        batch_id: &str,
    ) -> Result<Option<BatchCounts>, StoreError> {
        let counts = match &self.backend {
            Backend::Sqlite(store) => store.batch_counts(tenant, batch_id).await?,
            Backend::Postgres(store) => store.batch_counts(tenant, batch_id).await?,
        };
        Ok((counts.total > 0).then_some(counts))
    }

    pub async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.queue_counts().await,
            Backend::Postgres(store) => store.queue_counts().await,
        }
    }

    /// The first time after `since` at which a job becomes runnable by the
    /// clock alone: a released job's backoff ends (`run_after`) or a lease
    /// runs out (a claim then hands its job back). Enqueues wake waiting
    /// workers through `work_notifications`; these times are the rest.
    pub async fn next_due_after(
        &self,
        since: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.next_due_after(since).await,
            Backend::Postgres(store) => store.next_due_after(since).await,
        }
    }

    /// Notifications that jobs became runnable (enqueued, released, retried
    /// or back from an expired lease), from every process sharing the
    /// store: PostgreSQL `LISTEN` on a connection of its own. `None` on
    /// SQLite, whose single replica wakes its own waiters.
    pub async fn work_notifications(&self) -> Result<Option<WorkNotifications>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(store) => Ok(Some(WorkNotifications {
                listener: store.listen_for_work().await?,
            })),
        }
    }

    /// When the oldest queued job was submitted; `None` when none is queued.
    pub async fn oldest_queued_at(&self) -> Result<Option<UnixMillis>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.oldest_queued_at().await,
            Backend::Postgres(store) => store.oldest_queued_at().await,
        }
    }

    /// Queued plus running jobs of one tenant (for the tenant's queue limit).
    pub async fn tenant_open_jobs(&self, tenant: &str) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.tenant_open_jobs(tenant).await,
            Backend::Postgres(store) => store.tenant_open_jobs(tenant).await,
        }
    }

    /// Create a tenant or change its limits; the name must be a slug
    /// (`validate_tenant_name`).
    pub async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        validate_tenant_name(&tenant.name)?;
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

    /// Every tenant with its limits, by name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.list_tenants().await,
            Backend::Postgres(store) => store.list_tenants().await,
        }
    }

    /// Store a key of one tenant (a user, or a worker of only that tenant's
    /// jobs) by the SHA-256 of its secret; returns its key id. The tenant
    /// must exist (`StoreError::UnknownTenant`) and its name be a slug.
    pub async fn create_tenant_key(
        &self,
        tenant: &str,
        scope: TenantKeyScope,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        validate_tenant_name(tenant)?;
        self.create_key(
            KeyOwner::Tenant(tenant.to_string()),
            scope.into(),
            secret_sha256_hex,
            expires_at,
        )
        .await
    }

    /// Store a farm worker token (it may lease every tenant's jobs); returns
    /// its key id.
    pub async fn create_farm_worker_key(
        &self,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        self.create_key(
            KeyOwner::Farm,
            KeyScope::Worker,
            secret_sha256_hex,
            expires_at,
        )
        .await
    }

    /// Store an operator token (the farm itself); returns its key id. Only
    /// `leanfarm tenant`, run where the store is reachable, calls this: the
    /// HTTP API must never mint an operator token.
    pub async fn create_operator_key(
        &self,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        self.create_key(
            KeyOwner::Farm,
            KeyScope::Operator,
            secret_sha256_hex,
            expires_at,
        )
        .await
    }

    async fn create_key(
        &self,
        owner: KeyOwner,
        scope: KeyScope,
        secret_sha256_hex: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<String, StoreError> {
        let tenant = match owner {
            KeyOwner::Farm => None,
            KeyOwner::Tenant(tenant) => Some(tenant),
        };
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .create_key(tenant, scope, secret_sha256_hex, expires_at)
                    .await
            }
            Backend::Postgres(store) => {
                store
                    .create_key(tenant, scope, secret_sha256_hex, expires_at)
                    .await
            }
        }
    }

    /// Look a token up by the SHA-256 of its secret: `Valid` only if it is
    /// neither revoked nor expired.
    pub async fn authenticate(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Authentication, StoreError> {
        let Some(key) = self.find_key(secret_sha256_hex).await? else {
            return Ok(Authentication::Unknown);
        };
        Ok(if key.revoked {
            Authentication::Revoked(key)
        } else if key.is_expired_at(now_millis()) {
            Authentication::Expired(key)
        } else {
            Authentication::Valid(key)
        })
    }

    async fn find_key(&self, secret_sha256_hex: &str) -> Result<Option<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.find_key(secret_sha256_hex).await,
            Backend::Postgres(store) => store.find_key(secret_sha256_hex).await,
        }
    }

    /// The old lookup, kept while the API moves to `authenticate`: an
    /// expired token is reported as revoked (so it never authenticates), and
    /// the farm's tokens have an empty tenant.
    pub async fn find_api_key(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let now = now_millis();
        Ok(self
            .find_key(secret_sha256_hex)
            .await?
            .map(|key| ApiKeyRecord {
                revoked: key.revoked || key.is_expired_at(now),
                tenant: match key.owner {
                    KeyOwner::Farm => String::new(),
                    KeyOwner::Tenant(tenant) => tenant,
                },
                key_id: key.key_id,
                scope: key.scope,
                created_at: key.created_at,
            }))
    }

    /// The keys of one owner (revoked and expired ones too), oldest first.
    pub async fn list_keys(&self, owner: &KeyOwner) -> Result<Vec<KeyRecord>, StoreError> {
        let tenant = match owner {
            KeyOwner::Farm => None,
            KeyOwner::Tenant(tenant) => Some(tenant.clone()),
        };
        match &self.backend {
            Backend::Sqlite(store) => store.list_keys(tenant).await,
            Backend::Postgres(store) => store.list_keys(tenant).await,
        }
    }

    /// Revoke a key by its key id; false if there is no such key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.revoke_api_key(key_id).await,
            Backend::Postgres(store) => store.revoke_api_key(key_id).await,
        }
    }

    /// Revoke a key by the SHA-256 of its token; returns its key id, or
    /// `None` if no key has this digest.
    pub async fn revoke_token(
        &self,
        secret_sha256_hex: &str,
    ) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.revoke_token(secret_sha256_hex).await,
            Backend::Postgres(store) => store.revoke_token(secret_sha256_hex).await,
        }
    }
}
