//! What every submission path shares (`/v1/checks` and the Kimina
//! endpoints): validation, the target check, the queue limits, enqueueing
//! in one transaction, and waiting for the verdicts.
//!
//! It knows nothing of any endpoint's request or response shape, and must
//! never change a job's state except through `Store`.

use crate::error::ApiError;
use crate::AppState;
use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};
use leanfarm_driver::Driver;
use leanfarm_store::{
    Admission, CancelScope, Cancellation, IdempotencyKey, JobRecord, JobState, NewJob, WorkerSeen,
};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tracing::Instrument;

/// Attempts before a job that keeps failing for infrastructure reasons is dead-lettered.
const MAX_ATTEMPTS: u32 = 3;
/// How often a waiting request re-reads the store when no in-process notice came.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Which workers may run a submission's jobs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Target {
    pub toolchain: Option<String>,
    pub project: Option<String>,
}

/// A worker counts as able to run a target if it claimed within this window.
pub(crate) const WORKER_SEEN_WINDOW: Duration = Duration::from_secs(300);

impl Target {
    fn describe(toolchain: Option<&str>, project: Option<&str>) -> String {
        match (toolchain, project) {
            (Some(toolchain), Some(project)) => {
                format!("toolchain `{toolchain}` with project `{project}`")
            }
            (Some(toolchain), None) => format!("toolchain `{toolchain}`"),
            (None, Some(project)) => format!("project `{project}`"),
            (None, None) => "any toolchain".to_string(),
        }
    }

    /// Refuse a target that no worker can run: the in-process workers, or a
    /// worker that claimed within `WORKER_SEEN_WINDOW`. A job no worker can
    /// run would wait forever.
    async fn check_served(&self, state: &AppState) -> Result<(), ApiError> {
        let (toolchain, project) = (self.toolchain.as_deref(), self.project.as_deref());
        if toolchain.is_none() && project.is_none() {
            return Ok(());
        }
        // The in-process workers count from the start, before their first claim.
        let local = state.driver.as_ref().map(|driver| WorkerSeen {
            worker_id: "in-process".to_string(),
            toolchain: Some(driver.toolchain().name.clone()),
            project: Some(driver.toolchain().project_name.clone()),
            seen_at: leanfarm_store::now_millis(),
        });
        if local
            .as_ref()
            .is_some_and(|worker| worker.can_run(toolchain, project))
        {
            return Ok(());
        }
        let workers = workers_seen_lately(state).await?;
        if workers
            .iter()
            .any(|worker| worker.can_run(toolchain, project))
        {
            return Ok(());
        }
        let mut offered: Vec<String> = workers
            .iter()
            .chain(&local)
            .map(|worker| Target::describe(worker.toolchain.as_deref(), worker.project.as_deref()))
            .collect();
        offered.sort();
        offered.dedup();
        Err(ApiError::NoWorkerForTarget {
            wanted: Target::describe(toolchain, project),
            window_seconds: WORKER_SEEN_WINDOW.as_secs(),
            offered: if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join("; ")
            },
        })
    }
}

/// The workers that claimed within `WORKER_SEEN_WINDOW`.
pub(crate) async fn workers_seen_lately(state: &AppState) -> Result<Vec<WorkerSeen>, ApiError> {
    let since = leanfarm_store::now_millis() - WORKER_SEEN_WINDOW.as_millis() as i64;
    Ok(state.store.workers_seen(since).await?)
}

pub(crate) fn is_final(state: JobState) -> bool {
    matches!(state, JobState::Done | JobState::Dead)
}

/// Validate, enqueue (one transaction), and wait up to `wait` for the results.
/// With an idempotency key, a request the key already admitted gets that
/// batch back (its id and its jobs, as they are now), and nothing is queued.
pub(crate) async fn submit_and_wait(
    state: &AppState,
    tenant: &str,
    target: &Target,
    requests: Vec<CheckRequest>,
    wait: Duration,
    idempotency: Option<&IdempotencyKey>,
) -> Result<(String, Vec<JobRecord>), ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    validate(state, &requests)?;
    target.check_served(state).await?;
    let batch_size = requests.len() as u64;
    // A batch larger than a queue's whole capacity can never get in: no
    // retry would help, so it is not a 429.
    if batch_size > state.limits.max_queued_jobs {
        return Err(ApiError::BatchExceedsQueueLimit {
            size: batch_size,
            limit: state.limits.max_queued_jobs,
            queue: "the farm's queue".to_string(),
        });
    }
    let batch_id = uuid::Uuid::now_v7().to_string();
    // The enqueue span is every job's parent: its traceparent goes with
    // each job to the worker that leases it (none when traces are off).
    let enqueue_span = tracing::info_span!("enqueue", batch_id = %batch_id, jobs = batch_size);
    let trace_context = enqueue_span.in_scope(leanfarm_worker::trace_context::current_traceparent);
    let jobs: Vec<NewJob> = requests
        .into_iter()
        .map(|request| CheckRequest {
            trace_context: trace_context.clone(),
            ..request
        })
        .map(|request| NewJob {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.to_string(),
            batch_id: Some(batch_id.clone()),
            header_key: Driver::header_key(&request.code),
            request,
            max_attempts: MAX_ATTEMPTS,
            toolchain: target.toolchain.clone(),
            project: target.project.clone(),
        })
        .collect();
    let ids: Vec<String> = jobs.iter().map(|job| job.id.clone()).collect();
    // Subscribe before enqueueing so no completion can be missed.
    let completions = state.completions.subscribe();
    // The farm's cap, the tenant's `max_queued` and the idempotency key are
    // checked by the store in the enqueue transaction, so that replicas
    // admitting at once never pass a cap together nor admit one key twice.
    let admission = state
        .store
        .admit(jobs, state.limits.max_queued_jobs, idempotency)
        .instrument(enqueue_span)
        .await?;
    let (batch_id, ids) = match admission {
        Admission::Enqueued => {
            state.enqueued.notify_waiters();
            state.enqueued.notify_one();
            (batch_id, ids)
        }
        Admission::Replayed { batch_id, job_ids } => (batch_id, job_ids),
        refused => return Err(refusal(state, refused, batch_size)),
    };
    let records = wait_for(state, &ids, completions, wait).await?;
    Ok((batch_id, records))
}

/// The error for an admission of `batch_size` jobs that wrote nothing. A
/// batch larger than its tenant's whole `max_queued` is not a 429: no retry
/// would help. (The store checks the tenant's limit in the enqueue
/// transaction, so no read of the tenant comes before it.)
fn refusal(state: &AppState, admission: Admission, batch_size: u64) -> ApiError {
    match admission {
        Admission::KeyReused => ApiError::IdempotencyKeyReused,
        Admission::TenantQueueFull { tenant, limit, .. } if batch_size > limit => {
            ApiError::BatchExceedsQueueLimit {
                size: batch_size,
                limit,
                queue: format!("tenant `{tenant}`'s queue"),
            }
        }
        Admission::QueueFull { queued, limit } => {
            state.metrics.request_rejected();
            ApiError::QueueFull { queued, limit }
        }
        Admission::TenantQueueFull {
            tenant,
            open,
            limit,
        } => {
            state.metrics.request_rejected();
            ApiError::TenantQueueFull {
                tenant,
                open,
                limit,
            }
        }
        Admission::Enqueued | Admission::Replayed { .. } => {
            ApiError::Internal("an admitted batch was treated as refused".to_string())
        }
    }
}

/// Enqueue one check with an id chosen by the caller (a prove job's
/// candidate), through the same validation and limits as `/v1/checks`; a
/// check with this id that exists already is left alone.
pub(crate) async fn enqueue_with_id(
    state: &AppState,
    tenant: &str,
    check_id: &str,
    request: CheckRequest,
) -> Result<(), ApiError> {
    if state.store.get(check_id).await?.is_some() {
        return Ok(());
    }
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    let requests = vec![request];
    validate(state, &requests)?;
    let request = requests.into_iter().next().expect("one request");
    let job = NewJob {
        id: check_id.to_string(),
        tenant: tenant.to_string(),
        batch_id: None,
        header_key: Driver::header_key(&request.code),
        request,
        max_attempts: MAX_ATTEMPTS,
        toolchain: None,
        project: None,
    };
    let admission = state
        .store
        .enqueue_within(vec![job], state.limits.max_queued_jobs)
        .await?;
    if admission != Admission::Enqueued {
        return Err(refusal(state, admission, 1));
    }
    state.enqueued.notify_waiters();
    state.enqueued.notify_one();
    Ok(())
}

fn validate(state: &AppState, requests: &[CheckRequest]) -> Result<(), ApiError> {
    let limits = &state.limits;
    if requests.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if requests.len() > limits.max_batch {
        return Err(ApiError::BatchTooLarge {
            size: requests.len(),
            limit: limits.max_batch,
        });
    }
    for (index, request) in requests.iter().enumerate() {
        crate::input_limits::check_request(index, request)?;
        let id = request
            .custom_id
            .clone()
            .unwrap_or_else(|| format!("#{index}"));
        if request.code.len() > limits.max_snippet_bytes {
            return Err(ApiError::SnippetTooLarge {
                id,
                size: request.code.len(),
                limit: limits.max_snippet_bytes,
            });
        }
        if request.code.contains('\0') {
            return Err(ApiError::NulByte(id));
        }
        let timeout = request.timeout_seconds;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= limits.max_timeout_seconds) {
            return Err(ApiError::InvalidTimeout {
                limit: limits.max_timeout_seconds,
            });
        }
    }
    Ok(())
}

/// Check a query's `wait` (0 to the farm's `max_wait_seconds`).
pub(crate) fn wait_duration(state: &AppState, wait: Option<f64>) -> Result<Duration, ApiError> {
    let wait = wait.unwrap_or(0.0);
    let limit = state.limits.max_wait_seconds;
    if !(wait.is_finite() && (0.0..=limit).contains(&wait)) {
        return Err(ApiError::InvalidWait { limit });
    }
    Ok(Duration::from_secs_f64(wait))
}

/// Cancel the tenant's open jobs in `scope` (docs/api.md, "Cancelling"):
/// each gets a `cancelled` verdict at once; a running one's worker learns at
/// its next renewal that the lease is gone and stops the check. Requests
/// waiting in this process for these jobs are woken.
pub(crate) async fn cancel(
    state: &AppState,
    tenant: &str,
    scope: &CancelScope,
) -> Result<Cancellation, ApiError> {
    let verdict = Verdict::rejected(VerdictReason::new(
        ReasonCode::Cancelled,
        "the submitter cancelled this check before it finished",
    ));
    let cancellation = state.store.cancel(tenant, scope, &verdict).await?;
    for job_id in &cancellation.job_ids {
        let _ = state.completions.send(job_id.clone());
    }
    if !cancellation.job_ids.is_empty() {
        tracing::info!(
            tenant,
            queued = cancellation.queued,
            running = cancellation.running,
            "checks cancelled"
        );
    }
    Ok(cancellation)
}

/// Paces a long poll (`?wait=`) or a stream: `changed` returns when a job
/// may have finished (a completion in this process, or `WAIT_POLL` passed,
/// since another process may have finished it), and says `false` once the
/// deadline has passed or the workers have drained on shutdown.
pub(crate) struct ChangeWaiter {
    completions: broadcast::Receiver<String>,
    workers_stopped: tokio::sync::watch::Receiver<bool>,
    deadline: Instant,
}

impl ChangeWaiter {
    /// Subscribe before the first read, so that no completion is missed.
    pub(crate) fn new(state: &AppState, wait: Duration) -> ChangeWaiter {
        ChangeWaiter {
            completions: state.completions.subscribe(),
            workers_stopped: state.workers_stopped.subscribe(),
            deadline: Instant::now() + wait,
        }
    }

    /// Wait for a possible change, then `true`: read again. `false` (at
    /// once) when the wait is over.
    pub(crate) async fn changed(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline || *self.workers_stopped.borrow() {
            return false;
        }
        let until = (now + WAIT_POLL).min(self.deadline);
        tokio::select! {
            _ = self.completions.recv() => {
                // Let completions that arrive together be read at once.
                tokio::time::sleep(COMPLETION_SETTLE).await;
                while self.completions.try_recv().is_ok() {}
            }
            _ = self.workers_stopped.changed() => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
        true
    }
}

/// After one completion, how long a `ChangeWaiter` waits for others before
/// the caller reads the store again.
const COMPLETION_SETTLE: Duration = Duration::from_millis(20);

/// Wait until every job is final or `wait` runs out; returns the records in order.
async fn wait_for(
    state: &AppState,
    ids: &[String],
    mut completions: broadcast::Receiver<String>,
    wait: Duration,
) -> Result<Vec<JobRecord>, ApiError> {
    let deadline = Instant::now() + wait;
    let mut pending: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut next_poll = Instant::now() + WAIT_POLL;
    // Once the workers have drained on shutdown, no verdict comes any more.
    let mut workers_stopped = state.workers_stopped.subscribe();
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::select! {
            _ = async { let _ = workers_stopped.wait_for(|stopped| *stopped).await; } => break,
            received = completions.recv() => match received {
                Ok(job_id) => { pending.remove(job_id.as_str()); }
                Err(broadcast::error::RecvError::Lagged(_)) => next_poll = Instant::now(),
                Err(broadcast::error::RecvError::Closed) => next_poll = Instant::now(),
            },
            _ = tokio::time::sleep_until(next_poll.min(deadline).into()) => {}
        }
        if Instant::now() >= next_poll {
            let records = state.store.get_many(ids).await?;
            pending.retain(|id| {
                records
                    .iter()
                    .any(|record| record.id == *id && !is_final(record.state))
            });
            next_poll = Instant::now() + WAIT_POLL;
        }
    }
    Ok(state.store.get_many(ids).await?)
}
