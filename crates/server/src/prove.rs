//! The prove API: `POST /v1/prove` (validate, check the budget against the
//! tenant's allowance, store the job leased to this replica, start it),
//! `GET /v1/prove/{id}` with a long poll, `GET /v1/prove/{id}/events` (the
//! attempts as server-sent events) and `DELETE /v1/prove/{id}`.
//!
//! The loop itself runs in `prove_runner`; this module only reads and
//! answers, and never changes a prove job's state except through `Store`.

use crate::error::{excerpt, ApiError};
use crate::prove_runner::{self, attempts_of, service};
use crate::submit::wait_duration;
use crate::{auth, body, input_limits, AppState};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use leanfarm_core::Verdict;
use leanfarm_prove::orchestrator::usage_of;
use leanfarm_prove::{Budget, ProveRequest, Usage};
use leanfarm_store::ProveJobRow;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// One candidate as the API shows it.
#[derive(Serialize)]
pub(crate) struct AttemptView {
    round: u32,
    candidate: u32,
    route: String,
    model: String,
    tokens: u64,
    check_id: String,
    verdict: Option<Verdict>,
    time_ms: u64,
}

/// A prove job as `GET /v1/prove/{id}` shows it.
#[derive(Serialize)]
pub(crate) struct ProveView {
    id: String,
    state: String,
    proof: Option<String>,
    reason: Option<String>,
    attempts: Vec<AttemptView>,
    usage: Usage,
    budget: Budget,
}

async fn view(state: &AppState, row: ProveJobRow) -> Result<ProveView, ApiError> {
    let attempts = attempts_of(state, &row.id).await?;
    let request: Option<ProveRequest> = serde_json::from_str(&row.request).ok();
    // A running or cancelled job's usage is its attempts' (a cancellation
    // stores none); an ended job's is what its replica stored at the end.
    let usage = match row.state.as_str() {
        "running" => usage_of(&attempts, row.created_at),
        "cancelled" => {
            let mut usage = usage_of(&attempts, row.created_at);
            let ended = row.finished_at.unwrap_or(row.updated_at);
            usage.wall_seconds = ((ended - row.created_at).max(0) as f64) / 1000.0;
            usage
        }
        _ => {
            serde_json::from_str(&row.usage).unwrap_or_else(|_| usage_of(&attempts, row.created_at))
        }
    };

    Ok(ProveView {
        id: row.id,
        state: row.state,
        proof: row.proof,
        reason: row.reason,
        attempts: attempts
            .into_iter()
            .filter(|attempt| attempt.round > 0)
            .map(|attempt| AttemptView {
                round: attempt.round,
                candidate: attempt.candidate,
                route: attempt.route,
                model: attempt.model,
                tokens: attempt.tokens,
                check_id: attempt.check_id,
                verdict: attempt.verdict,
                time_ms: attempt.time_ms,
            })
            .collect(),
        usage,
        budget: request.map(|request| request.budget).unwrap_or_default(),
    })
}

/// `POST /v1/prove`: 202 with the job, running.
pub(crate) async fn submit_prove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    let request: ProveRequest = body::parse_body(&state, &raw)?;
    let service = service(&state);
    request
        .validate(&service.settings.ceiling, state.limits.max_timeout_seconds)
        .map_err(|error| ApiError::InvalidProveRequest(error.to_string()))?;
    if !service.gateway.has_route(&request.route) {
        return Err(ApiError::UnknownModelRoute(excerpt(&request.route)));
    }
    let running = state.store.running_prove_jobs(&tenant).await?;
    let limit = service.settings.max_running_per_tenant;
    if running >= limit {
        state.metrics.request_rejected();
        return Err(ApiError::TenantProveJobsFull {
            tenant,
            running,
            limit,
        });
    }
    let allowance = prove_runner::allowance(&state, &tenant).await?;
    if let Some(left) = allowance.tokens_left {
        if request.budget.tokens > left {
            return Err(ApiError::BudgetOverAllowance {
                tenant,
                what: "model tokens",
                asked: request.budget.tokens.to_string(),
                left: left.to_string(),
            });
        }
    }
    if let Some(left) = allowance.cost_left {
        let price = service.gateway.highest_price_per_1k(&request.route);
        let most = request.budget.tokens as f64 * price / 1000.0;
        if most > left {
            return Err(ApiError::BudgetOverAllowance {
                tenant,
                what: "cost",
                asked: format!("up to {most}"),
                left: left.to_string(),
            });
        }
    }
    let now = leanfarm_store::now_millis();
    let row = ProveJobRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant,
        state: "running".to_string(),
        request: serde_json::to_string(&request).expect("a request serialises"),
        usage: serde_json::to_string(&Usage::default()).expect("usage serialises"),
        proof: None,
        reason: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    state
        .store
        .create_prove_job(&row, &service.owner, service.lease_until())
        .await?;
    prove_runner::spawn_job(Arc::clone(&state), row.clone());
    let shown = view(&state, row).await?;
    Ok((StatusCode::ACCEPTED, Json(shown)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ProveQuery {
    wait: Option<f64>,
}

/// The tenant's prove job, or 404 (another tenant's job is not shown).
async fn job_of(state: &AppState, tenant: &str, id: &str) -> Result<ProveJobRow, ApiError> {
    if id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::ProveJobNotFound(excerpt(id)));
    }
    match state.store.get_prove_job(id).await? {
        Some(row) if row.tenant == tenant => Ok(row),
        _ => Err(ApiError::ProveJobNotFound(excerpt(id))),
    }
}

/// How often a long poll or a stream reads the store when no notice came
/// (another replica may drive the job).
const POLL: Duration = Duration::from_millis(500);

/// Wait for a change of this job (a notice from this replica's runner, or
/// `POLL`); `false` once the deadline has passed.
async fn changed(
    changes: &mut broadcast::Receiver<String>,
    job_id: &str,
    deadline: Instant,
) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let until = (now + POLL).min(deadline);
    loop {
        tokio::select! {
            received = changes.recv() => match received {
                Ok(id) if id != job_id => continue,
                _ => return true,
            },
            _ = tokio::time::sleep_until(until.into()) => return true,
        }
    }
}

/// `GET /v1/prove/{id}`; with `?wait=S`, answers once the job has ended or after S seconds.
pub(crate) async fn get_prove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ProveQuery>, QueryRejection>,
) -> Result<Json<ProveView>, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let wait = wait_duration(&state, query.wait)?;
    let deadline = Instant::now() + wait;
    let mut changes = service(&state).changes.subscribe();
    loop {
        let row = job_of(&state, &tenant, &id).await?;
        if row.state != "running" || !changed(&mut changes, &id, deadline).await {
            return Ok(Json(view(&state, row).await?));
        }
    }
}

/// `DELETE /v1/prove/{id}`: stop a running job (`cancelled`), and cancel its open checks.
pub(crate) async fn cancel_prove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ProveView>, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    job_of(&state, &tenant, &id).await?;
    let cancelled = state
        .store
        .cancel_prove_job(&tenant, &id, "the submitter cancelled this prove job")
        .await?;
    if cancelled == Some(true) {
        let service = service(&state);
        service.stop_local(&id);
        prove_runner::cancel_open_checks(&state, &tenant, &id).await;
        state.metrics.prove_finished("cancelled", 0.0, None);
        service.changed(&id);
    }
    let row = job_of(&state, &tenant, &id).await?;
    Ok(Json(view(&state, row).await?))
}

/// Send a keep-alive comment after this long without an event.
const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/prove/{id}/events`: `attempt` events (each candidate once it
/// has its verdict), then one `end` event with the job, then the stream closes.
pub(crate) async fn prove_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    job_of(&state, &tenant, &id).await?;
    struct Events {
        state: Arc<AppState>,
        tenant: String,
        id: String,
        sent: HashSet<(u32, u32)>,
        changes: broadcast::Receiver<String>,
        since_last_event: Instant,
        ended: bool,
        first: bool,
    }
    let events = Events {
        changes: service(&state).changes.subscribe(),
        state: Arc::clone(&state),
        tenant,
        id,
        sent: HashSet::new(),
        since_last_event: Instant::now(),
        ended: false,
        first: true,
    };
    let stream = futures::stream::unfold(events, |mut events| async move {
        if events.ended {
            return None;
        }
        loop {
            if !events.first {
                let far = Instant::now() + Duration::from_secs(3600);
                changed(&mut events.changes, &events.id, far).await;
                if events.state.shutting_down.load(Ordering::Relaxed) {
                    events.ended = true;
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(
                            b": the farm is shutting down\n\n",
                        )),
                        events,
                    ));
                }
            }
            events.first = false;
            let row = match job_of(&events.state, &events.tenant, &events.id).await {
                Ok(row) => row,
                Err(error) => {
                    events.ended = true;
                    return Some((Err(std::io::Error::other(error.to_string())), events));
                }
            };
            let shown = match view(&events.state, row).await {
                Ok(shown) => shown,
                Err(error) => {
                    events.ended = true;
                    return Some((Err(std::io::Error::other(error.to_string())), events));
                }
            };
            let mut chunk = String::new();
            for attempt in shown
                .attempts
                .iter()
                .filter(|attempt| attempt.verdict.is_some())
            {
                if events.sent.insert((attempt.round, attempt.candidate)) {
                    let data = serde_json::to_string(attempt).expect("an attempt serialises");
                    chunk.push_str(&format!("event: attempt\ndata: {data}\n\n"));
                }
            }
            if shown.state != "running" {
                let data = serde_json::to_string(&shown).expect("a job serialises");
                chunk.push_str(&format!("event: end\ndata: {data}\n\n"));
                events.ended = true;
            }
            if !chunk.is_empty() {
                events.since_last_event = Instant::now();
                return Some((Ok(Bytes::from(chunk)), events));
            }
            if events.since_last_event.elapsed() >= EVENTS_KEEP_ALIVE {
                events.since_last_event = Instant::now();
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), events));
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
