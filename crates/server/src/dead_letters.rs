//! The operator API for dead letters: `GET /v1/operator/jobs` lists jobs of
//! any tenant by state (dead by default), and `POST /v1/operator/jobs/retry`
//! puts dead jobs back in the queue (by ids, by batch, or all of them) with
//! a reason recorded as their last error. Only an operator token may call
//! either; the count of dead jobs is the `lean_farm_queue_size{state="dead"}`
//! gauge.
//!
//! This module never changes a job except through `Store::retry_dead`.

use crate::body::parse_body;
use crate::error::ApiError;
use crate::{auth, AppState};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use leanfarm_store::{DeadJobSelector, JobRecord, JobState, ListFilter, UnixMillis};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most jobs one list answers with.
const MAX_LIST: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorListQuery {
    /// Default: `dead`.
    state: Option<JobState>,
    tenant: Option<String>,
    batch_id: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// A job as the operator sees it (no snippet, no verdict).
#[derive(Debug, Serialize)]
pub(crate) struct OperatorJob {
    id: String,
    tenant: String,
    batch_id: Option<String>,
    state: JobState,
    attempts: u32,
    max_attempts: u32,
    last_error: Option<String>,
    created_at: UnixMillis,
    finished_at: Option<UnixMillis>,
}

impl From<JobRecord> for OperatorJob {
    fn from(record: JobRecord) -> OperatorJob {
        OperatorJob {
            id: record.id,
            tenant: record.tenant,
            batch_id: record.batch_id,
            state: record.state,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            last_error: record.last_error,
            created_at: record.created_at,
            finished_at: record.finished_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct OperatorListResponse {
    jobs: Vec<OperatorJob>,
}

pub(crate) async fn list_jobs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<OperatorListQuery>, QueryRejection>,
) -> Result<Json<OperatorListResponse>, ApiError> {
    auth::operator(&state, &headers).await?;
    let Query(query) =
        query.map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
    let filter = ListFilter {
        tenant: query.tenant,
        state: Some(query.state.unwrap_or(JobState::Dead)),
        batch_id: query.batch_id,
        status: None,
        after: query.after,
        limit: query.limit.unwrap_or(100).clamp(1, MAX_LIST),
    };
    let jobs = state.store.list(&filter).await?;
    Ok(Json(OperatorListResponse {
        jobs: jobs.into_iter().map(OperatorJob::from).collect(),
    }))
}

/// `POST /v1/operator/jobs/retry`: exactly one of `job_ids`, `batch_id`
/// and `all_dead`, and a reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryRequest {
    #[serde(default)]
    job_ids: Option<Vec<String>>,
    #[serde(default)]
    batch_id: Option<String>,
    #[serde(default)]
    all_dead: bool,
    reason: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RetryResponse {
    /// The jobs put back in the queue (those of the selection that were dead).
    retried: Vec<String>,
}

pub(crate) async fn retry_jobs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RetryResponse>, ApiError> {
    auth::operator(&state, &headers).await?;
    let request: RetryRequest = parse_body(&state, &body)?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "reason must say why the jobs are retried".into(),
        ));
    }
    let selector = match (request.job_ids, request.batch_id, request.all_dead) {
        (Some(ids), None, false) if !ids.is_empty() => DeadJobSelector::Ids(ids),
        (None, Some(batch), false) => DeadJobSelector::Batch(batch),
        (None, None, true) => DeadJobSelector::All,
        _ => {
            return Err(ApiError::InvalidRequest(
                "give exactly one of job_ids (not empty), batch_id and all_dead".into(),
            ))
        }
    };
    let retried = state
        .store
        .retry_dead(&selector, request.reason.trim())
        .await?;
    if !retried.is_empty() {
        tracing::info!(count = retried.len(), reason = %request.reason.trim(), "dead jobs put back in the queue");
        state.enqueued.notify_waiters();
    }
    Ok(Json(RetryResponse { retried }))
}
