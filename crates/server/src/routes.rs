//! Every route of the server, composed in one place: the `/v1` API and
//! probes (`api`), the Kimina endpoints (`kimina`) and the worker API
//! (`remote`), under one body-size limit.
//!
//! Handlers live in their modules; this module only wires them, and no
//! handler module imports it.

use crate::{api, keys, kimina, remote, AppState};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The router of the whole API.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/checks", post(api::submit_checks).get(api::list_checks))
        .route("/v1/checks/{id}", get(api::get_check))
        .route("/v1/workers", get(api::list_workers))
        .route("/v1/keys", get(keys::list_keys))
        .route("/api/check", post(kimina::api_check))
        .route("/verify", post(kimina::verify))
        .route("/v1/worker/lease", post(remote::lease))
        .route("/v1/worker/renew", post(remote::renew))
        .route("/v1/worker/complete", post(remote::complete))
        .route("/v1/worker/release", post(remote::release))
        .route("/health", get(kimina::health))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
