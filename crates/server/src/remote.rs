//! The worker API: `leanfarm worker` processes lease jobs, renew their
//! leases, and complete or release them over HTTP, with a worker token and
//! no database or bucket credentials of their own. Each call is one store
//! operation; the server does what follows a stored verdict (metrics,
//! artifacts, waking the requests that wait for it) through
//! `completion::verdict_stored`, as for the in-process workers. A completion
//! answered `stale` whose job owes artifacts (its verdict was stored by an
//! earlier try whose answer was lost) settles them before it answers. The
//! wire types are `leanfarm_worker::protocol`'s, shared with the worker's
//! client.

use crate::body::parse_body;
use crate::completion::verdict_stored;
use crate::error::ApiError;
use crate::input_limits::{self, MAX_ID_BYTES};
use crate::outbox::settle_job;
use crate::{auth, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use leanfarm_store::{CompleteOutcome, Lease, WorkerOffer};
use leanfarm_worker::protocol::{
    CompleteRequest, CompleteResponse, LeaseRequest, LeaseResponse, ReleaseRequest,
    ReleaseResponse, RenewRequest, RenewResponse,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds on what a worker may ask for.
const MAX_LEASE_SECONDS: f64 = 600.0;
const MIN_LEASE_SECONDS: f64 = 1.0;
const MAX_WAIT_SECONDS: f64 = 30.0;
const MAX_JOBS_PER_LEASE: usize = 256;

fn lease_duration(seconds: f64) -> Result<Duration, ApiError> {
    if !(MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS).contains(&seconds) {
        return Err(ApiError::InvalidRequest(format!(
            "lease_seconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A completion's or release's job and lease ids.
fn lease_ids(job_id: &str, lease_id: &str) -> Result<(), ApiError> {
    input_limits::string("job_id", job_id, MAX_ID_BYTES)?;
    input_limits::string("lease_id", lease_id, MAX_ID_BYTES)
}

pub(crate) async fn lease(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let authority = auth::worker(&state, &headers).await?;
    let request: LeaseRequest = parse_body(&state, &body)?;
    input_limits::string(
        "worker_id",
        &request.worker_id,
        input_limits::MAX_WORKER_ID_BYTES,
    )?;
    input_limits::optional_string(
        "toolchain",
        request.toolchain.as_deref(),
        input_limits::MAX_TARGET_NAME_BYTES,
    )?;
    input_limits::optional_string(
        "project",
        request.project.as_deref(),
        input_limits::MAX_TARGET_NAME_BYTES,
    )?;
    input_limits::list(
        "warm_headers",
        &request.warm_headers,
        input_limits::MAX_WARM_HEADERS,
    )?;
    for (index, header) in request.warm_headers.iter().enumerate() {
        input_limits::string(
            &format!("warm_headers[{index}]"),
            header,
            input_limits::MAX_WARM_HEADER_BYTES,
        )?;
    }
    if !(request.wait_seconds.is_finite()
        && (0.0..=MAX_WAIT_SECONDS).contains(&request.wait_seconds))
    {
        return Err(ApiError::InvalidRequest(format!(
            "wait_seconds must be between 0 and {MAX_WAIT_SECONDS}"
        )));
    }
    let duration = lease_duration(request.lease_seconds)?;
    if request.max == 0 {
        return Err(ApiError::InvalidRequest("max must be at least 1".into()));
    }
    // A worker with more free slots than one lease may hold asks again.
    let max = request.max.min(MAX_JOBS_PER_LEASE);
    let offer = WorkerOffer {
        toolchain: request.toolchain,
        project: request.project,
        warm_headers: request.warm_headers,
    };
    let deadline = Instant::now() + Duration::from_secs_f64(request.wait_seconds);
    let mut woken = false;
    loop {
        if state
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(ApiError::ShuttingDown);
        }
        // Registered before the claim, so that work arriving between an
        // empty claim and the wait still wakes this request.
        let wake_up = state.enqueued.notified();
        tokio::pin!(wake_up);
        wake_up.as_mut().enable();
        let leases = if woken {
            let _permit = state.woken_claims.acquire().await;
            state
                .store
                .claim_as(&authority, &request.worker_id, max, duration, &offer)
                .await?
        } else {
            state
                .store
                .claim_as(&authority, &request.worker_id, max, duration, &offer)
                .await?
        };
        if !leases.is_empty() || Instant::now() >= deadline {
            return Ok(Json(LeaseResponse { leases }));
        }
        // No polling while idle: this replica's wake-ups (`work_wakeups`)
        // fire on work enqueued by any replica and on jobs the clock makes
        // runnable.
        tokio::select! {
            _ = wake_up => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        woken = true;
    }
}

pub(crate) async fn renew(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RenewResponse>, ApiError> {
    let authority = auth::worker(&state, &headers).await?;
    let request: RenewRequest = parse_body(&state, &body)?;
    input_limits::list("leases", &request.leases, input_limits::MAX_RENEW_LEASES)?;
    for (index, lease) in request.leases.iter().enumerate() {
        input_limits::string(
            &format!("leases[{index}].job_id"),
            &lease.job_id,
            MAX_ID_BYTES,
        )?;
        input_limits::string(
            &format!("leases[{index}].lease_id"),
            &lease.lease_id,
            MAX_ID_BYTES,
        )?;
    }
    let duration = lease_duration(request.lease_seconds)?;
    let pairs: Vec<(String, String)> = request
        .leases
        .into_iter()
        .map(|lease| (lease.job_id, lease.lease_id))
        .collect();
    let held = state.store.renew_as(&authority, &pairs, duration).await?;
    Ok(Json(RenewResponse { held }))
}

pub(crate) async fn complete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CompleteResponse>, ApiError> {
    let authority = auth::worker(&state, &headers).await?;
    let request: CompleteRequest = parse_body(&state, &body)?;
    lease_ids(&request.job_id, &request.lease_id)?;
    let verdict_bytes = serde_json::to_vec(&request.verdict)
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .len();
    if verdict_bytes > input_limits::MAX_VERDICT_BYTES {
        return Err(ApiError::FieldTooLarge {
            field: "verdict".into(),
            size: verdict_bytes,
            limit: input_limits::MAX_VERDICT_BYTES,
            unit: "bytes",
        });
    }
    crate::keys::check_completion(&state, &request).await?;
    let attestation = request
        .attestation
        .as_ref()
        .map(leanfarm_attest::Attestation::to_json);
    let outcome = state
        .store
        .complete_attested_as(
            &authority,
            &request.job_id,
            &request.lease_id,
            &request.verdict,
            attestation.as_deref(),
        )
        .await?;
    if outcome == CompleteOutcome::Stored {
        if let Some(record) = state.store.get(&request.job_id).await? {
            let seconds = match (record.started_at, record.finished_at) {
                (Some(started), Some(finished)) => (finished - started).max(0) as f64 / 1000.0,
                _ => 0.0,
            };
            let lease = Lease {
                job_id: record.id,
                lease_id: request.lease_id,
                attempt: record.attempts,
                tenant: record.tenant,
                request: record.request,
                header_key: record.header_key,
                expires_at: 0,
            };
            verdict_stored(&state, &lease, request.verdict, seconds).await;
        }
    } else if let Err(error) = settle_job(&state, &request.job_id).await {
        tracing::warn!(job_id = %request.job_id, %error, "settling the artifacts of a retried completion failed; the outbox sweep writes them");
    }
    Ok(Json(CompleteResponse { outcome }))
}

pub(crate) async fn release(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let authority = auth::worker(&state, &headers).await?;
    let request: ReleaseRequest = parse_body(&state, &body)?;
    lease_ids(&request.job_id, &request.lease_id)?;
    input_limits::string(
        "error",
        &request.error,
        input_limits::MAX_RELEASE_ERROR_BYTES,
    )?;
    if !(request.retry_after_seconds.is_finite() && request.retry_after_seconds >= 0.0) {
        return Err(ApiError::InvalidRequest(
            "retry_after_seconds must be a finite number of seconds".into(),
        ));
    }
    let outcome = state
        .store
        .release_as(
            &authority,
            &request.job_id,
            &request.lease_id,
            &request.error,
            Duration::from_secs_f64(request.retry_after_seconds.min(3600.0)),
        )
        .await?;
    Ok(Json(ReleaseResponse { outcome }))
}
