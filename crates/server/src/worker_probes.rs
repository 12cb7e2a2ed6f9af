//! The listener of a remote worker process (`leanfarm worker
//! --metrics-addr`): `/healthz`, `/readyz` and `/metrics` about the worker
//! itself (its slots, REPLs, pool, checks finished and Lean CPU time),
//! without a token, for a private network. It serves no API: every other
//! route is 404 `not_found`, every other method 405.

use crate::metrics::render_worker;
use crate::routes::{method_not_allowed, no_route};
use crate::serve::serve;
use crate::Limits;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use leanfarm_driver::Driver;
use leanfarm_worker::WorkerStats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the worker's probes read.
pub struct WorkerProbes {
    driver: Driver,
    stats: WorkerStats,
    /// The driver is built and its prestart headers are loaded.
    pool_ready: AtomicBool,
    /// Shutdown began: the worker leases nothing more.
    draining: AtomicBool,
}

impl WorkerProbes {
    pub fn new(driver: Driver, stats: WorkerStats) -> Arc<WorkerProbes> {
        Arc::new(WorkerProbes {
            driver,
            stats,
            pool_ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// The REPL pool can take work (prestart done).
    pub fn set_pool_ready(&self) {
        self.pool_ready.store(true, Ordering::Relaxed);
    }

    /// The worker is shutting down: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn is_ready(&self) -> bool {
        self.pool_ready.load(Ordering::Relaxed)
            && self.stats.has_lease_answer()
            && !self.draining.load(Ordering::Relaxed)
    }
}

/// Serve the probes on `listener` until `shutdown` turns true.
pub async fn serve_worker_probes(
    listener: TcpListener,
    probes: Arc<WorkerProbes>,
    shutdown: watch::Receiver<bool>,
) {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(probes);
    serve(listener, router, Limits::default(), None, shutdown).await;
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(probes): State<Arc<WorkerProbes>>) -> Response {
    let ready = probes.is_ready();
    let body = serde_json::json!({
        "ready": ready,
        "pool_ready": probes.pool_ready.load(Ordering::Relaxed),
        "api_answered": probes.stats.has_lease_answer(),
        "draining": probes.draining.load(Ordering::Relaxed),
        "worker_slots": probes.driver.slots(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(probes): State<Arc<WorkerProbes>>) -> Response {
    let text = render_worker(
        probes.driver.slots(),
        probes.driver.stats(),
        &probes.stats,
        probes.is_ready(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
