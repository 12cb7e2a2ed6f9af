//! The `/v1` API (submit, read and list checks, list workers), the health
//! and readiness probes, metrics and the OpenAPI document.
//!
//! Submission itself (validation, enqueueing, waiting) is `submit`'s; this
//! module only translates between HTTP and it.

use crate::body::parse_body;
use crate::error::{excerpt, ApiError};
use crate::input_limits;
use crate::submit::{
    cancel, is_final, submit_and_wait, wait_duration, workers_seen_lately, ChangeWaiter, Target,
    WORKER_SEEN_WINDOW,
};
use crate::views::{percent_decodes_to_utf8, CheckView};
use crate::{auth, AppState};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use leanfarm_core::{CheckRequest, CheckStatus, Policy};
use leanfarm_driver::Driver;
use leanfarm_store::{CancelScope, Cancellation, IdempotencyKey, JobState, ListFilter, WorkerSeen};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const OPENAPI_DOCUMENT: &str = include_str!("openapi.json");

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmittedSnippet {
    #[serde(default)]
    id: Option<String>,
    code: String,
}

#[derive(Serialize)]
struct ChecksResponse {
    batch_id: Option<String>,
    results: Vec<CheckView>,
}

pub(crate) async fn submit_checks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    let idempotency = idempotency_key(&state, &headers, &body)?;
    let submission: SubmitRequest = parse_body(&state, &body)?;
    input_limits::optional_string(
        "toolchain",
        submission.toolchain.as_deref(),
        input_limits::MAX_TARGET_NAME_BYTES,
    )?;
    input_limits::optional_string(
        "project",
        submission.project.as_deref(),
        input_limits::MAX_TARGET_NAME_BYTES,
    )?;
    let max_wait = state.limits.max_wait_seconds;
    if !(submission.wait.is_finite() && (0.0..=max_wait).contains(&submission.wait)) {
        return Err(ApiError::InvalidWait { limit: max_wait });
    }
    let requests = submission
        .snippets
        .into_iter()
        .map(|snippet| CheckRequest {
            custom_id: snippet.id,
            code: snippet.code,
            timeout_seconds: submission.timeout,
            policy: submission.policy.clone(),
            infotree: None,
            trace_context: None,
        })
        .collect();
    let wait = submission.wait;
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
        idempotency.as_ref(),
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

/// The longest `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The request's `Idempotency-Key`, if it has one, with the SHA-256 of the
/// body it came with: at most one header, of 1 to 255 printable ASCII
/// characters without spaces, else 400 `invalid_idempotency_key`.
fn idempotency_key(
    state: &AppState,
    headers: &HeaderMap,
    body: &Result<Bytes, BytesRejection>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let invalid = |why: &str| ApiError::InvalidIdempotencyKey {
        max_bytes: MAX_IDEMPOTENCY_KEY_BYTES,
        why: why.to_string(),
    };
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("the header is given more than once"));
    }
    let key = value.as_bytes();
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(invalid(&format!("it is {} bytes", key.len())));
    }
    if !key.iter().all(|byte| (0x21..=0x7e).contains(byte)) {
        return Err(invalid(
            "it holds a space, a control character or a non-ascii byte",
        ));
    }
    // A body that cannot be read fails later, in `parse_body`, as usual.
    let body: &[u8] = match body {
        Ok(bytes) => bytes,
        Err(_) => &[],
    };
    Ok(Some(IdempotencyKey {
        key: String::from_utf8_lossy(key).into_owned(),
        request_sha256: hex::encode(sha2::Sha256::digest(body)),
        keep_for: state.limits.idempotency_keep,
    }))
}

#[derive(Deserialize)]
pub(crate) struct CheckQuery {
    /// Seconds to wait until the check is final.
    wait: Option<f64>,
}

/// `GET /v1/checks/{id}`; with `?wait=S`, answers once the check is final
/// or after S seconds.
pub(crate) async fn get_check(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<CheckQuery>, QueryRejection>,
) -> Result<Json<CheckView>, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    // No id is longer: a longer one names no check (and is not looked up).
    if id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::NotFound(excerpt(&id)));
    }
    let wait = wait_duration(&state, query.wait)?;
    let mut waiter = ChangeWaiter::new(&state, wait);
    loop {
        let record = match state.store.get(&id).await? {
            Some(record) if record.tenant == tenant => record,
            _ => return Err(ApiError::NotFound(excerpt(&id))),
        };
        if is_final(record.state) || !waiter.changed().await {
            return Ok(Json(CheckView::from(record)));
        }
    }
}

/// `DELETE /v1/checks/{id}`: cancel the check if it is still open.
pub(crate) async fn cancel_check(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Cancellation>, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    if id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::NotFound(excerpt(&id)));
    }
    match state.store.get(&id).await? {
        Some(record) if record.tenant == tenant => {}
        _ => return Err(ApiError::NotFound(excerpt(&id))),
    }
    Ok(Json(cancel(&state, &tenant, &CancelScope::Job(id)).await?))
}

/// The most checks one page lists.
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<JobState>,
    /// Only checks whose verdict has this status (so only `done` ones).
    status: Option<CheckStatus>,
    #[serde(alias = "batch")]
    batch_id: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct ListResponse {
    results: Vec<CheckView>,
    /// Pass as `after` to get the next page; absent on the last page.
    next_after: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct WorkersResponse {
    /// How recently a worker must have claimed work to be listed.
    window_seconds: u64,
    /// Each with its last recorded claim (`seen_at`, Unix milliseconds,
    /// recorded at most every 15 s).
    workers: Vec<WorkerSeen>,
}

/// The workers that claimed work lately (this process's own included), with
/// the toolchain and project each offers: what a submission may name.
pub(crate) async fn list_workers(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<WorkersResponse>, ApiError> {
    auth::operational(&state, &headers).await?;
    Ok(Json(WorkersResponse {
        window_seconds: WORKER_SEEN_WINDOW.as_secs(),
        workers: workers_seen_lately(&state).await?,
    }))
}

pub(crate) async fn list_checks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    if !percent_decodes_to_utf8(uri.query().unwrap_or("")) {
        return Err(ApiError::InvalidQuery(
            "a percent-encoded value is not UTF-8".into(),
        ));
    }
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    for (field, value) in [("batch_id", &query.batch_id), ("after", &query.after)] {
        if value
            .as_ref()
            .is_some_and(|value| value.len() > input_limits::MAX_ID_BYTES)
        {
            return Err(ApiError::InvalidQuery(format!(
                "`{field}` is longer than {} bytes",
                input_limits::MAX_ID_BYTES
            )));
        }
    }
    let filter = ListFilter {
        tenant: Some(tenant),
        state: query.state,
        status: query.status,
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

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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

/// `/metrics` on the API's listener: an operator's under `require_auth`.
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::operational(&state, &headers).await?;
    Ok(metrics_text(&state).await)
}

/// `/metrics` on its own listener (`--metrics-addr`), which only operators
/// reach: no token.
pub(crate) async fn metrics_without_token(State(state): State<Arc<AppState>>) -> Response {
    metrics_text(&state).await
}

async fn metrics_text(state: &AppState) -> Response {
    let queue = state.store.queue_counts().await.ok();
    let since = leanfarm_store::now_millis() - crate::metrics::ACTIVE_WORKER_WINDOW_MILLIS;
    let active_workers = state.store.active_workers(since).await.ok();
    let mut text = state.metrics.render(
        queue,
        active_workers,
        state.driver.as_ref().map(Driver::stats),
    );
    if let Ok(oldest_queued_at) = state.store.oldest_queued_at().await {
        crate::metrics::render_queue_age(&mut text, oldest_queued_at, leanfarm_store::now_millis());
    }
    text.push_str(&crate::prove_runner::render_metrics(state));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
        .into_response()
}
