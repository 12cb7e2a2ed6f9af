//! The one table of API errors: each code, its HTTP status, and the JSON body
//! `{"code", "message"}` every error response carries.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body does not match the schema: {0}")]
    InvalidRequest(String),
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("snippet `{id}` is {size} bytes; the limit is {limit}")]
    SnippetTooLarge {
        id: String,
        size: usize,
        limit: usize,
    },
    #[error("snippet `{0}` contains a NUL byte")]
    NulByte(String),
    #[error("a batch holds at most {limit} snippets; this one has {size}")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("a request needs at least one snippet")]
    EmptyBatch,
    #[error("timeout must be between 0 and {limit} seconds")]
    InvalidTimeout { limit: f64 },
    #[error("no worker that runs {wanted} has been seen in the last {window_seconds} s (workers offer: {offered}); name one of those, or none, or retry once such workers run")]
    NoWorkerForTarget {
        wanted: String,
        window_seconds: u64,
        offered: String,
    },
    #[error("no check with id `{0}`")]
    NotFound(String),
    #[error("the queue holds {queued} jobs and takes at most {limit}; this batch does not fit now; retry later")]
    QueueFull { queued: u64, limit: u64 },
    #[error("a batch of {size} snippets can never be queued: {queue} holds at most {limit} jobs; split it into batches of at most {limit}")]
    BatchExceedsQueueLimit {
        size: u64,
        limit: u64,
        queue: String,
    },
    #[error("tenant `{tenant}` has {open} open jobs, its limit is {limit}; retry later")]
    TenantQueueFull {
        tenant: String,
        open: u64,
        limit: u64,
    },
    #[error("tenant `{tenant}` is limited to {rate} requests per second; retry later")]
    RateLimited { tenant: String, rate: f64 },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code and HTTP status of each error.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::InvalidJson(_) => ("invalid_json", StatusCode::BAD_REQUEST),
            ApiError::InvalidRequest(_) => ("invalid_request", StatusCode::BAD_REQUEST),
            ApiError::BodyTooLarge(_) => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::SnippetTooLarge { .. } => {
                ("snippet_too_large", StatusCode::PAYLOAD_TOO_LARGE)
            }
            ApiError::NulByte(_) => ("nul_byte", StatusCode::BAD_REQUEST),
            ApiError::BatchTooLarge { .. } => ("batch_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::EmptyBatch => ("empty_batch", StatusCode::BAD_REQUEST),
            ApiError::InvalidTimeout { .. } => ("invalid_timeout", StatusCode::BAD_REQUEST),
            ApiError::NoWorkerForTarget { .. } => {
                ("no_worker_for_target", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::QueueFull { .. } => ("queue_full", StatusCode::TOO_MANY_REQUESTS),
            ApiError::BatchExceedsQueueLimit { .. } => {
                ("batch_exceeds_queue_limit", StatusCode::PAYLOAD_TOO_LARGE)
            }
            ApiError::TenantQueueFull { .. } => {
                ("tenant_queue_full", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::RateLimited { .. } => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            ApiError::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::StoreUnavailable(_) => ("store_unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::ShuttingDown => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl From<leanfarm_store::StoreError> for ApiError {
    fn from(error: leanfarm_store::StoreError) -> Self {
        match error {
            leanfarm_store::StoreError::Unavailable(why) => ApiError::StoreUnavailable(why),
            not_yours @ leanfarm_store::StoreError::NotYours { .. } => {
                ApiError::Forbidden(not_yours.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let body = serde_json::json!({ "code": code, "message": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        }
        response
    }
}
