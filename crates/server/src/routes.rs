//! Every route of the server, composed in one place: the `/v1` API and
//! probes (`api`), the Kimina endpoints (`kimina`) and the worker API
//! (`remote`), the operator's dead letters (`dead_letters`), the
//! dashboards' summaries (`overview`, `attestation_check`) and the web
//! console's files (`console`), under one
//! body-size limit; the answers for an unknown route and a wrong method;
//! and the guard every request passes first (the size of its target and
//! headers, and the time its body may take to arrive).
//!
//! Handlers live in their modules; this module only wires them, and no
//! handler module imports it. Every answer it makes itself is an `ApiError`
//! (`{code, message}` JSON), never a bare status.

use crate::error::{excerpt, ApiError};
use crate::{
    api, artifact_reads, attestation_check, batches, console, dead_letters, keys, kimina, overview,
    prove, remote, search, sessions, AppState,
};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tracing::Instrument;

/// The router of the whole API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/checks", post(api::submit_checks).get(api::list_checks))
        .route(
            "/v1/checks/{id}",
            get(api::get_check).delete(api::cancel_check),
        )
        .route(
            "/v1/checks/{id}/attestation",
            get(attestation_check::attestation_status),
        )
        .route(
            "/v1/checks/{id}/artifacts/{name}",
            get(artifact_reads::get_artifact),
        )
        .route("/v1/batches", get(overview::list_batches))
        .route("/v1/overview", get(overview::overview))
        .route(
            "/v1/batches/{id}",
            get(batches::get_batch).delete(batches::cancel_batch),
        )
        .route("/v1/batches/{id}/results", get(batches::export_results))
        .route("/v1/batches/{id}/events", get(batches::batch_events))
        .route("/v1/prove", post(prove::submit_prove))
        .route(
            "/v1/prove/{id}",
            get(prove::get_prove).delete(prove::cancel_prove),
        )
        .route("/v1/prove/{id}/events", get(prove::prove_events))
        .route("/v1/sessions", post(sessions::open_session))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get_session).delete(sessions::delete_session),
        )
        .route("/v1/sessions/{id}/tactics", post(sessions::apply_tactics))
        .route("/v1/sessions/{id}/finish", post(sessions::finish_session))
        .route("/v1/workers", get(api::list_workers))
        .route("/v1/keys", get(keys::list_keys))
        .route("/v1/search", get(search::search))
        .route("/api/check", post(kimina::api_check))
        .route("/verify", post(kimina::verify))
        .route("/v1/worker/lease", post(remote::lease))
        .route("/v1/worker/renew", post(remote::renew))
        .route("/v1/worker/complete", post(remote::complete))
        .route("/v1/worker/release", post(remote::release))
        .route("/v1/worker/sessions/poll", post(sessions::worker_poll))
        .route(
            "/v1/worker/sessions/complete",
            post(sessions::worker_complete),
        )
        .route("/v1/worker/sessions/live", post(sessions::worker_live))
        .route("/v1/operator/jobs", get(dead_letters::list_jobs))
        .route("/v1/operator/jobs/retry", post(dead_letters::retry_jobs))
        .route("/", get(console::index))
        .route("/console/{name}", get(console::asset))
        .route("/health", get(kimina::health))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .route_layer(middleware::from_fn(trace_request))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard_request,
        ))
        .with_state(state)
}

/// The router of the metrics listener (`--metrics-addr`): `/metrics`
/// without a token, and nothing else.
pub(crate) fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics_without_token))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard_request,
        ))
        .with_state(state)
}

/// Run a request to a route in its own span (`POST /v1/checks`), the root
/// of its trace when traces are exported: a client's `traceparent` is not
/// trusted to join the farm's traces.
async fn trace_request(matched: MatchedPath, request: Request, next: Next) -> Response {
    let name = format!("{} {}", request.method(), matched.as_str());
    let span = tracing::info_span!(
        "http request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %matched.as_str(),
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

pub(crate) async fn no_route(method: Method, request: Request) -> ApiError {
    ApiError::NoRoute {
        method: excerpt(method.as_str()),
        path: excerpt(request.uri().path()),
    }
}

pub(crate) async fn method_not_allowed(method: Method, request: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: excerpt(method.as_str()),
        path: excerpt(request.uri().path()),
    }
}

/// Refuse a request whose target or headers are too large (414, 431), and
/// read its body within the body read timeout (408) and the body limit
/// (413), before any handler sees it.
async fn guard_request(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let limits = &state.limits;
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return ApiError::UriTooLong {
            size: uri_bytes,
            limit: limits.max_uri_bytes,
        }
        .into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return ApiError::HeadersTooLarge {
            size: header_bytes,
            limit: limits.max_header_bytes,
        }
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.body_read_timeout, read).await {
        Err(_elapsed) => {
            return ApiError::BodyTimeout {
                seconds: limits.body_read_timeout.as_secs_f64(),
            }
            .into_response()
        }
        Ok(Err(_too_large_or_broken)) => {
            return ApiError::BodyTooLarge(limits.max_body_bytes).into_response()
        }
        Ok(Ok(bytes)) => bytes,
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
