//! The `/v1` API, health, metrics and the OpenAPI document, plus what every
//! submission path shares: validation, enqueueing and waiting.

use crate::error::ApiError;
use crate::{auth, kimina, remote, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use leanfarm_core::{CheckRequest, Policy, Verdict};
use leanfarm_driver::Driver;
use leanfarm_store::{JobRecord, JobState, ListFilter, NewJob, WorkerSeen};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Attempts before a job that keeps failing for infrastructure reasons is dead-lettered.
const MAX_ATTEMPTS: u32 = 3;
/// How often a waiting request re-reads the store when no in-process notice came.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub(crate) const OPENAPI_DOCUMENT: &str = include_str!("openapi.json");

pub(crate) fn routes(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/checks", post(submit_checks).get(list_checks))
        .route("/v1/checks/{id}", get(get_check))
        .route("/v1/workers", get(list_workers))
        .route("/api/check", post(kimina::api_check))
        .route("/verify", post(kimina::verify))
        .route("/v1/worker/lease", post(remote::lease))
        .route("/v1/worker/renew", post(remote::renew))
        .route("/v1/worker/complete", post(remote::complete))
        .route("/v1/worker/release", post(remote::release))
        .route("/health", get(kimina::health))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Parse a JSON body with our own errors (axum's rejections are not in the table).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    body: &Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            return Err(ApiError::BodyTooLarge(state.limits.max_body_bytes))
        }
        Err(other) => return Err(ApiError::InvalidRequest(other.body_text())),
    };
    let text = std::str::from_utf8(body)
        .map_err(|error| ApiError::InvalidJson(format!("body is not UTF-8: {error}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    T::deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|_| value))
        .map_err(|error| match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
            _ => ApiError::InvalidJson(error.to_string()),
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    snippets: Vec<SubmittedSnippet>,
    #[serde(default = "leanfarm_core::default_timeout_seconds")]
    timeout: f64,
    #[serde(default)]
    policy: Policy,
    /// Seconds to wait for the verdicts; 0 returns the job ids at once.
    #[serde(default)]
    wait: f64,
    /// Run only on workers with this toolchain (by name); any if absent.
    #[serde(default)]
    toolchain: Option<String>,
    /// Run only on workers with this Lean project (by name); any if absent.
    #[serde(default)]
    project: Option<String>,
}

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
async fn workers_seen_lately(state: &AppState) -> Result<Vec<WorkerSeen>, ApiError> {
    let since = leanfarm_store::now_millis() - WORKER_SEEN_WINDOW.as_millis() as i64;
    Ok(state.store.workers_seen(since).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmittedSnippet {
    #[serde(default)]
    id: Option<String>,
    code: String,
}

/// A check as the API shows it.
#[derive(Serialize)]
pub(crate) struct CheckView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    pub batch_id: Option<String>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl From<JobRecord> for CheckView {
    fn from(record: JobRecord) -> Self {
        let error = match record.state {
            JobState::Dead => Some(format!(
                "the farm gave up after {} attempts: {}",
                record.attempts,
                record.last_error.as_deref().unwrap_or("unknown error")
            )),
            _ => None,
        };
        CheckView {
            id: record.id,
            custom_id: record.request.custom_id.clone(),
            batch_id: record.batch_id,
            state: record.state,
            verdict: record.result,
            attempts: record.attempts,
            error,
            created_at: record.created_at,
            finished_at: record.finished_at,
        }
    }
}

#[derive(Serialize)]
struct ChecksResponse {
    batch_id: Option<String>,
    results: Vec<CheckView>,
}

async fn submit_checks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    let submission: SubmitRequest = parse_body(&state, &body)?;
    let requests = submission
        .snippets
        .into_iter()
        .map(|snippet| CheckRequest {
            custom_id: snippet.id,
            code: snippet.code,
            timeout_seconds: submission.timeout,
            policy: submission.policy.clone(),
            infotree: None,
        })
        .collect();
    let wait = submission.wait.clamp(0.0, state.limits.max_wait_seconds);
    let target = Target {
        toolchain: submission.toolchain,
        project: submission.project,
    };
    let (batch_id, records) = submit_and_wait(
        &state,
        &tenant,
        &target,
        requests,
        Duration::from_secs_f64(wait),
    )
    .await?;
    let all_final = records.iter().all(|record| is_final(record.state));
    let status = if all_final {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let results = records.into_iter().map(CheckView::from).collect();
    Ok((
        status,
        Json(ChecksResponse {
            batch_id: Some(batch_id),
            results,
        }),
    )
        .into_response())
}

pub(crate) fn is_final(state: JobState) -> bool {
    matches!(state, JobState::Done | JobState::Dead)
}

/// Validate, enqueue (one transaction), and wait up to `wait` for the results.
pub(crate) async fn submit_and_wait(
    state: &AppState,
    tenant: &str,
    target: &Target,
    requests: Vec<CheckRequest>,
    wait: Duration,
) -> Result<(String, Vec<JobRecord>), ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    validate(state, &requests)?;
    target.check_served(state).await?;
    let queued = state.queued_jobs.load(Ordering::Relaxed);
    if queued + requests.len() as u64 > state.limits.max_queued_jobs {
        state.metrics.request_rejected();
        return Err(ApiError::QueueFull { queued });
    }
    if let Some(limits) = state.store.get_tenant(tenant).await? {
        let open = state.store.tenant_open_jobs(tenant).await?;
        if open + requests.len() as u64 > limits.max_queued {
            state.metrics.request_rejected();
            return Err(ApiError::TenantQueueFull {
                tenant: tenant.to_string(),
                open,
                limit: limits.max_queued,
            });
        }
    }
    let batch_id = uuid::Uuid::now_v7().to_string();
    let jobs: Vec<NewJob> = requests
        .into_iter()
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
    state.store.enqueue(jobs).await?;
    state.enqueued.notify_waiters();
    state.enqueued.notify_one();
    let records = wait_for(state, &ids, completions, wait).await?;
    Ok((batch_id, records))
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
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::select! {
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

async fn get_check(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<CheckView>, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    match state.store.get(&id).await? {
        Some(record) if record.tenant == tenant => Ok(Json(CheckView::from(record))),
        _ => Err(ApiError::NotFound(id)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<JobState>,
    batch_id: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct ListResponse {
    results: Vec<CheckView>,
    /// Pass as `after` to get the next page; absent on the last page.
    next_after: Option<String>,
}

#[derive(Serialize)]
struct WorkersResponse {
    /// How recently a worker must have claimed work to be listed.
    window_seconds: u64,
    /// Each with its last recorded claim (`seen_at`, Unix milliseconds,
    /// recorded at most every 15 s).
    workers: Vec<WorkerSeen>,
}

/// The workers that claimed work lately (this process's own included), with
/// the toolchain and project each offers: what a submission may name.
async fn list_workers(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<WorkersResponse>, ApiError> {
    auth::user_tenant(&state, &headers).await?;
    Ok(Json(WorkersResponse {
        window_seconds: WORKER_SEEN_WINDOW.as_secs(),
        workers: workers_seen_lately(&state).await?,
    }))
}

async fn list_checks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let filter = ListFilter {
        tenant: Some(tenant),
        state: query.state,
        batch_id: query.batch_id,
        after: query.after,
        limit,
    };
    let records = state.store.list(&filter).await?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|record| record.id.clone()))
        .flatten();
    Ok(Json(ListResponse {
        results: records.into_iter().map(CheckView::from).collect(),
        next_after,
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store_ready = state.store.ping().await;
    // A replica without in-process workers is ready when its store is:
    // remote workers do the checking.
    let slots = state.driver.as_ref().map(Driver::slots);
    let ready =
        store_ready.is_ok() && slots != Some(0) && !state.shutting_down.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "ready": ready,
        "store": store_ready.map(|_| "ok".to_string()).unwrap_or_else(|error| error.to_string()),
        "worker_slots": slots.unwrap_or(0),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let queue = state.store.queue_counts().await.ok();
    let text = state
        .metrics
        .render(queue, state.driver.as_ref().map(Driver::stats));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
        .into_response()
}
