//! The one table of API errors: each code, its HTTP status, and the JSON body
//! `{"code", "message"}` every error response carries.
//!
//! A message never quotes user input at length: what it quotes goes through
//! `excerpt`, and every message is cut to `MAX_MESSAGE_CHARS` before it is
//! sent (serde's own messages quote unknown fields and variants).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body does not match the schema: {0}")]
    InvalidRequest(String),
    #[error("the query string does not match the schema: {0}")]
    InvalidQuery(String),
    #[error("the request path is not valid: {0}")]
    InvalidPath(String),
    #[error("`{field}` is {size} {unit}; the limit is {limit}")]
    FieldTooLarge {
        field: String,
        size: usize,
        limit: usize,
        unit: &'static str,
    },
    #[error("the pinned statement cannot be used: {0}")]
    InvalidPinnedStatement(String),
    #[error("`wait` must be between 0 and {limit} seconds")]
    InvalidWait { limit: f64 },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{path} does not allow {method}")]
    MethodNotAllowed { method: String, path: String },
    #[error("the request target is {size} bytes; the limit is {limit}")]
    UriTooLong { size: usize, limit: usize },
    #[error("the request headers are {size} bytes; the limit is {limit}")]
    HeadersTooLarge { size: usize, limit: usize },
    #[error("the request body was not received within {seconds} s")]
    BodyTimeout { seconds: f64 },
    #[error("the server holds {limit} connections, its limit; retry later")]
    TooManyConnections { limit: usize },
    /// What hyper refused before any handler ran (the status it chose).
    #[error("{}", unparsable_request_message(*.0))]
    UnparsableRequest(StatusCode),
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
    #[error("no batch with id `{0}`")]
    BatchNotFound(String),
    #[error("no artifact is named `{0}`: a check's artifacts are {1}")]
    UnknownArtifact(String, String),
    #[error("check `{job_id}` has no artifact {name} (yet: artifacts are written once the verdict is stored)")]
    ArtifactNotFound { job_id: String, name: String },
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
    #[error("the idempotency-key header must be 1 to {max_bytes} printable ascii characters (0x21 to 0x7e), given once: {why}")]
    InvalidIdempotencyKey { max_bytes: usize, why: String },
    #[error("this idempotency key was already used with another request body; use a new key for a new request")]
    IdempotencyKeyReused,
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
    #[error("this farm has no declarations index (start it with --search-index)")]
    SearchNotConfigured,
    #[error("the declarations index failed: {0}")]
    SearchFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the prove request cannot be run: {0}")]
    InvalidProveRequest(String),
    #[error("no model route `{0}` on this farm")]
    UnknownModelRoute(String),
    #[error(
        "tenant `{tenant}` may use {left} more {what} today; this job's budget asks for {asked}"
    )]
    BudgetOverAllowance {
        tenant: String,
        what: &'static str,
        asked: String,
        left: String,
    },
    #[error("no prove job with id `{0}`")]
    ProveJobNotFound(String),
    #[error(
        "tenant `{tenant}` has {running} prove jobs running, its limit is {limit}; retry later"
    )]
    TenantProveJobsFull {
        tenant: String,
        running: u64,
        limit: u64,
    },
    #[error("the session request cannot be run: {0}")]
    InvalidSessionRequest(String),
    #[error("no session with id `{0}`")]
    SessionNotFound(String),
    #[error("session `{id}` was lost: {reason}; open a new session")]
    SessionLost { id: String, reason: String },
    #[error("session `{id}` is closed: {reason}")]
    SessionClosed { id: String, reason: String },
    #[error("the session did not open: {0}")]
    SessionRefused(String),
    #[error("no worker took the session within {seconds} s; retry once workers run")]
    NoSessionHost { seconds: u64 },
    #[error("the worker that took the session has no room for its repls ({0}); retry later")]
    SessionCapacity(String),
    #[error("tenant `{tenant}` has {live} sessions open, its limit is {limit}; close one or retry later")]
    TenantSessionsFull {
        tenant: String,
        live: u64,
        limit: u64,
    },
    #[error("session `{id}` holds {states} proof states and may hold at most {limit}")]
    SessionStatesFull { id: String, states: u64, limit: u64 },
    #[error("tenant `{tenant}` is limited to {rate} tactics per second; retry later")]
    TacticsRateLimited { tenant: String, rate: f64 },
    #[error("session `{id}` has no proof state {proof_state}")]
    UnknownProofState { id: String, proof_state: u64 },
    #[error("proof state {proof_state} of session `{id}` is not proved: {why}")]
    ProofStateNotProved {
        id: String,
        proof_state: u64,
        why: String,
    },
}

impl ApiError {
    /// The stable code and HTTP status of each error.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::InvalidJson(_) => ("invalid_json", StatusCode::BAD_REQUEST),
            ApiError::InvalidRequest(_) | ApiError::InvalidQuery(_) | ApiError::InvalidPath(_) => {
                ("invalid_request", StatusCode::BAD_REQUEST)
            }
            ApiError::FieldTooLarge { .. } => ("field_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::InvalidPinnedStatement(_) => {
                ("invalid_pinned_statement", StatusCode::BAD_REQUEST)
            }
            ApiError::InvalidWait { .. } => ("invalid_wait", StatusCode::BAD_REQUEST),
            ApiError::NoRoute { .. } => ("not_found", StatusCode::NOT_FOUND),
            ApiError::MethodNotAllowed { .. } => {
                ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED)
            }
            ApiError::UriTooLong { .. } => ("uri_too_long", StatusCode::URI_TOO_LONG),
            ApiError::HeadersTooLarge { .. } => (
                "headers_too_large",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ),
            ApiError::BodyTimeout { .. } => ("body_timeout", StatusCode::REQUEST_TIMEOUT),
            ApiError::UnparsableRequest(status) => match *status {
                StatusCode::URI_TOO_LONG => ("uri_too_long", *status),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ("headers_too_large", *status),
                _ => ("invalid_request", StatusCode::BAD_REQUEST),
            },
            ApiError::TooManyConnections { .. } => {
                ("too_many_connections", StatusCode::SERVICE_UNAVAILABLE)
            }
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
            ApiError::NotFound(_) | ApiError::BatchNotFound(_) => {
                ("not_found", StatusCode::NOT_FOUND)
            }
            ApiError::UnknownArtifact(..) => ("unknown_artifact", StatusCode::NOT_FOUND),
            ApiError::ArtifactNotFound { .. } => ("artifact_not_found", StatusCode::NOT_FOUND),
            ApiError::QueueFull { .. } => ("queue_full", StatusCode::TOO_MANY_REQUESTS),
            ApiError::BatchExceedsQueueLimit { .. } => {
                ("batch_exceeds_queue_limit", StatusCode::PAYLOAD_TOO_LARGE)
            }
            ApiError::TenantQueueFull { .. } => {
                ("tenant_queue_full", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::RateLimited { .. } => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            ApiError::InvalidIdempotencyKey { .. } => {
                ("invalid_idempotency_key", StatusCode::BAD_REQUEST)
            }
            ApiError::IdempotencyKeyReused => {
                ("idempotency_key_reused", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::StoreUnavailable(_) => ("store_unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::ShuttingDown => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::SearchNotConfigured => ("search_not_configured", StatusCode::NOT_FOUND),
            ApiError::SearchFailed(_) => ("search_failed", StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::InvalidProveRequest(_) => ("invalid_prove_request", StatusCode::BAD_REQUEST),
            ApiError::UnknownModelRoute(_) => ("unknown_model_route", StatusCode::BAD_REQUEST),
            ApiError::BudgetOverAllowance { .. } => {
                ("budget_over_allowance", StatusCode::FORBIDDEN)
            }
            ApiError::ProveJobNotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::TenantProveJobsFull { .. } => {
                ("tenant_prove_jobs_full", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::InvalidSessionRequest(_) => {
                ("invalid_session_request", StatusCode::BAD_REQUEST)
            }
            ApiError::SessionNotFound(_) => ("session_not_found", StatusCode::NOT_FOUND),
            ApiError::SessionLost { .. } => ("session_lost", StatusCode::GONE),
            ApiError::SessionClosed { .. } => ("session_closed", StatusCode::CONFLICT),
            ApiError::SessionRefused(_) => ("session_refused", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::NoSessionHost { .. } => ("no_session_host", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::SessionCapacity(_) => ("session_capacity", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::TenantSessionsFull { .. } => {
                ("tenant_sessions_full", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::SessionStatesFull { .. } => {
                ("session_states_full", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::TacticsRateLimited { .. } => {
                ("tactics_rate_limited", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::UnknownProofState { .. } => {
                ("unknown_proof_state", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::ProofStateNotProved { .. } => {
                ("proof_state_not_proved", StatusCode::UNPROCESSABLE_ENTITY)
            }
        }
    }
}

fn unparsable_request_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::URI_TOO_LONG => "the request target is longer than the HTTP layer accepts",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request has more headers, or a larger head, than the HTTP layer accepts"
        }
        _ => "the request is not valid HTTP/1.1",
    }
}

/// The longest message an error response carries, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 512;

/// How much of a user's text a message quotes, in characters.
pub(crate) const EXCERPT_CHARS: usize = 64;

/// At most `EXCERPT_CHARS` characters of `text`, marked with `…` when cut.
pub(crate) fn excerpt(text: &str) -> String {
    cut(text, EXCERPT_CHARS)
}

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

impl ApiError {
    /// The JSON body of this error: `{"code", "message"}`, each
    /// `quoted` part of the message cut to an excerpt (serde quotes unknown
    /// fields and values so), the whole cut to `MAX_MESSAGE_CHARS`.
    pub fn body(&self) -> serde_json::Value {
        let (code, _) = self.code_and_status();
        let message = self.to_string();
        let shortened: Vec<String> = message
            .split('`')
            .enumerate()
            .map(|(index, part)| match index % 2 {
                1 => excerpt(part),
                _ => part.to_string(),
            })
            .collect();
        let message = cut(&shortened.join("`"), MAX_MESSAGE_CHARS);
        serde_json::json!({ "code": code, "message": message })
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
        let body = self.body();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_short_and_cut_on_a_character_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(1000);
        let quoted = excerpt(&long);
        assert_eq!(quoted.chars().count(), EXCERPT_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn a_message_that_quotes_a_huge_input_is_cut() {
        let error = ApiError::InvalidRequest(format!("unknown field `{}`", "x".repeat(1 << 20)));
        let body = error.body();
        assert_eq!(body["code"], "invalid_request");
        let message = body["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!(
                "the request body does not match the schema: unknown field `{}…`",
                "x".repeat(EXCERPT_CHARS)
            )
        );
        let error = ApiError::InvalidRequest("y".repeat(1 << 20));
        let message = error.body()["message"].as_str().unwrap().to_string();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
