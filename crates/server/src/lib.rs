//! The Lean Farm HTTP API and the in-process workers.
//!
//! The API validates requests, writes one job per snippet to the store before
//! it answers, and waits for results through an in-process notification with
//! a store poll as fallback (another process may finish the job). It keeps
//! no state a second replica could not rebuild from the store.
//!
//! Module map: `routes` wires every endpoint; `api` (the `/v1` API and
//! probes), `kimina` (Kimina's endpoints) and `remote` (the worker API) are
//! the handlers; `submit` is the submission logic `api` and `kimina` share;
//! `completion` is what follows a stored verdict, for `remote` and for
//! `in_process_queue` (the embedded workers' queue); `body`, `auth`,
//! `error` and `metrics` serve them all. No two modules import each other.
//!
//! This module must never change a job's state except through `Store`.

mod api;
pub mod auth;
mod body;
mod completion;
mod error;
mod in_process_queue;
mod keys;
mod kimina;
mod metrics;
mod remote;
mod routes;
mod submit;

pub use error::ApiError;
pub use in_process_queue::InProcessQueue;
pub use leanfarm_worker::WorkerConfig;
pub use metrics::Metrics;

use leanfarm_driver::Driver;
use leanfarm_store::{ArtifactStore, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, watch, Notify};

/// Size, time and load limits of the API. `Default` holds the documented
/// defaults (docs/operations.md); `leanfarm serve` takes each from a setting.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, in bytes (413 `body_too_large` beyond).
    pub max_body_bytes: usize,
    /// Largest snippet, in bytes (413 `snippet_too_large` beyond).
    pub max_snippet_bytes: usize,
    /// Most snippets in one request (413 `batch_too_large` beyond).
    pub max_batch: usize,
    /// Largest per-snippet timeout a request may ask for, in seconds.
    pub max_timeout_seconds: f64,
    /// Longest a request may wait for its verdicts, in seconds (longer waits are cut to it).
    pub max_wait_seconds: f64,
    /// Queued jobs of the whole farm (every tenant, every replica) beyond
    /// which new batches are refused with 429 `queue_full`; checked by the
    /// store in the enqueue transaction, so it is never exceeded.
    pub max_queued_jobs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_snippet_bytes: 1 << 20,
            max_batch: 1000,
            max_timeout_seconds: 600.0,
            max_wait_seconds: 300.0,
            max_queued_jobs: 100_000,
        }
    }
}

/// What every request handler and worker shares.
pub struct AppState {
    pub store: Store,
    pub artifacts: ArtifactStore,
    /// The in-process workers' driver; `None` on a replica that only serves
    /// the API (remote workers do the checking).
    pub driver: Option<Driver>,
    /// Every user request needs a token (otherwise tokenless requests are
    /// the `default` tenant's).
    pub require_auth: bool,
    pub(crate) rates: auth::RateLimiter,
    pub limits: Limits,
    pub metrics: Metrics,
    /// Ids of jobs completed in this process.
    pub completions: broadcast::Sender<String>,
    /// Woken when this process enqueues work.
    pub enqueued: Notify,
    pub shutting_down: AtomicBool,
    /// The public keys remote workers' attestations must verify against
    /// (`keys.rs`); unset, completions need no attestation.
    pub trusted_worker_keys: std::sync::OnceLock<leanfarm_attest::TrustedKeys>,
}

impl AppState {
    pub fn new(
        store: Store,
        artifacts: ArtifactStore,
        driver: Option<Driver>,
        limits: Limits,
        require_auth: bool,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            artifacts,
            driver,
            require_auth,
            rates: auth::RateLimiter::default(),
            limits,
            metrics: Metrics::default(),
            completions: broadcast::channel(4096).0,
            enqueued: Notify::new(),
            shutting_down: AtomicBool::new(false),
            trusted_worker_keys: std::sync::OnceLock::new(),
        })
    }
}

/// The router of the whole API.
pub fn router(state: Arc<AppState>) -> axum::Router {
    routes::router(state)
}

/// A running farm: the API on a bound listener plus the workers.
pub struct Farm {
    pub local_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    workers: tokio::task::JoinHandle<()>,
    state: Arc<AppState>,
}

impl Farm {
    /// Bind `addr`, serve the API and start the workers.
    pub async fn start(
        state: Arc<AppState>,
        addr: std::net::SocketAddr,
        worker: WorkerConfig,
    ) -> std::io::Result<Farm> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let workers = match state.driver.clone() {
            Some(driver) => tokio::spawn(leanfarm_worker::run(
                InProcessQueue::new(Arc::clone(&state)),
                driver,
                worker,
                shutdown_receiver.clone(),
            )),
            None => tokio::spawn(async {}),
        };
        let app = router(Arc::clone(&state));
        let mut server_shutdown = shutdown_receiver;
        let server = tokio::spawn(async move {
            let graceful = async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!(%error, "http server failed");
            }
        });
        let slots = state.driver.as_ref().map_or(0, Driver::slots);
        tracing::info!(%local_addr, slots, store = state.store.backend_name(), "lean farm is serving");
        Ok(Farm {
            local_addr,
            shutdown,
            server,
            workers,
            state,
        })
    }

    /// Stop taking requests and work, drain the workers, and return.
    pub async fn stop(self) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.workers.await;
    }
}
