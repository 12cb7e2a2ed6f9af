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
//! `batches` (a batch's progress, export and event stream) is a handler too,
//! and `views` the shape of a check that `api` and `batches` show;
//! `completion` is what follows a stored verdict, for `remote` and for
//! `in_process_queue` (the embedded workers' queue); `body`, `auth`,
//! `input_limits` (the cap on every field), `error` and `metrics` serve them
//! all. `artifact_reads` serves a check's artifacts; `retention` deletes
//! expired final jobs and their artifacts. `overview` and
//! `attestation_check` are read-only summaries for dashboards, and
//! `console` serves the web console's files. `serve` is the listener (connection cap, header read timeout,
//! graceful close). `worker_probes` is the listener of a remote worker
//! process (`leanfarm worker --metrics-addr`). No two modules import each
//! other.
//!
//! This module must never change a job's state except through `Store`.

mod api;
mod artifact_reads;
mod attestation_check;
pub mod auth;
pub mod autoscale;
mod batches;
mod body;
mod completion;
mod console;
mod dead_letters;
mod error;
mod in_process_queue;
mod input_limits;
mod keys;
mod kimina;
mod metrics;
mod outbox;
mod overview;
mod prove;
mod prove_runner;
mod remote;
pub mod retention;
mod routes;
mod search;
mod serve;
mod sessions;
mod submit;
mod tls;
mod views;
mod work_wakeups;
mod worker_probes;

pub use error::ApiError;
pub use in_process_queue::InProcessQueue;
pub use leanfarm_worker::WorkerConfig;
pub use metrics::Metrics;
pub use prove_runner::{ProveService, ProveSettings};
pub use retention::{collect_garbage, GarbageReport, RetentionPolicy};
pub use search::RetrieverPremises;
pub use sessions::{InProcessSessionOps, SessionLimits};
pub use tls::{ServerTls, TlsError};
pub use worker_probes::{serve_worker_probes, WorkerProbes};

use leanfarm_driver::Driver;
use leanfarm_store::{ArtifactStore, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

/// Size, time and load limits of the API (docs/api.md, "Limits"). `Default`
/// holds the documented defaults (docs/operations.md); `leanfarm serve`
/// takes each from a setting.
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
    /// The request target (path and query), in bytes (414 beyond).
    pub max_uri_bytes: usize,
    /// All request headers together, names and values, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// A client must send its request headers within this time, or its
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// A client must send its whole request body within this time (408).
    pub body_read_timeout: Duration,
    /// Open connections at once; a connection beyond is answered 503
    /// `too_many_connections` and closed.
    pub max_connections: usize,
    /// How long an `Idempotency-Key` of `POST /v1/checks` names the batch
    /// it admitted.
    pub idempotency_keep: Duration,
    /// The limits of tactic sessions.
    pub sessions: SessionLimits,
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
            max_uri_bytes: 8 << 10,
            max_header_bytes: 32 << 10,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 1024,
            idempotency_keep: leanfarm_store::DEFAULT_IDEMPOTENCY_KEEP,
            sessions: SessionLimits::default(),
        }
    }
}

/// Claims of woken long-polled leases run at once (half the store's pool).
const WOKEN_CLAIMS: usize = 8;

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
    /// Claims of long-polled leases after a wake-up, a few at a time: one
    /// wake-up may rouse hundreds of waiting workers, which then queue here
    /// rather than for the store's connections (which time out).
    pub(crate) woken_claims: tokio::sync::Semaphore,
    pub shutting_down: AtomicBool,
    /// Turns true when the in-process workers have drained: requests still
    /// waiting for verdicts then answer with what there is.
    pub(crate) workers_stopped: watch::Sender<bool>,
    /// The public keys remote workers' attestations must verify against
    /// (`keys.rs`); unset, completions need no attestation.
    pub trusted_worker_keys: std::sync::OnceLock<leanfarm_attest::TrustedKeys>,
    /// The farm's own signing keys and identity: the in-process workers
    /// sign every verdict with them, and `GET /v1/keys` publishes their
    /// public half (`keys.rs`); unset, their verdicts are not signed.
    pub farm_signer: std::sync::OnceLock<leanfarm_worker::VerdictSigner>,
    /// How long final jobs are kept; when set, this process sweeps expired
    /// jobs and their artifacts periodically (`retention.rs`).
    pub retention: std::sync::OnceLock<RetentionPolicy>,
    /// The declarations index `/v1/search` reads (`--search-index`); unset,
    /// the route answers 404 `search_not_configured`.
    pub search_index: std::sync::OnceLock<Arc<leanfarm_retriever::Retriever>>,
    /// The model gateway and prove settings (`prove_runner`); unset, the
    /// built-in `dummy` route with the default settings.
    pub prove: std::sync::OnceLock<Arc<ProveService>>,
    /// Woken when this process writes a session operation.
    pub session_ops: Notify,
    /// Woken when this process stores a session operation's reply.
    pub session_replies: Notify,
    pub(crate) tactic_rates: sessions::TacticRates,
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
            metrics: Metrics::new(limits.max_timeout_seconds),
            limits,
            completions: broadcast::channel(4096).0,
            enqueued: Notify::new(),
            woken_claims: tokio::sync::Semaphore::new(WOKEN_CLAIMS),
            shutting_down: AtomicBool::new(false),
            workers_stopped: watch::channel(false).0,
            trusted_worker_keys: std::sync::OnceLock::new(),
            farm_signer: std::sync::OnceLock::new(),
            retention: std::sync::OnceLock::new(),
            search_index: std::sync::OnceLock::new(),
            prove: std::sync::OnceLock::new(),
            session_ops: Notify::new(),
            session_replies: Notify::new(),
            tactic_rates: sessions::TacticRates::default(),
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
    /// Where `/metrics` is served without a token, when it has its own listener.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Whether the API listener terminates TLS (its URL is https://).
    pub https: bool,
    /// Stops the workers (first) and the queue refresh.
    stop_workers: watch::Sender<bool>,
    /// Closes the listeners (once the workers have drained).
    close_listeners: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    workers: tokio::task::JoinHandle<()>,
    /// The embedded workers' session host (stops its REPLs on stop).
    session_host: tokio::task::JoinHandle<()>,
    state: Arc<AppState>,
}

impl Farm {
    /// Bind `addr`, serve the API and start the workers.
    pub async fn start(
        state: Arc<AppState>,
        addr: std::net::SocketAddr,
        worker: WorkerConfig,
    ) -> std::io::Result<Farm> {
        Farm::start_with_metrics(state, addr, None, worker).await
    }

    /// `start`, and serve `/metrics` without a token on `metrics_addr` too.
    pub async fn start_with_metrics(
        state: Arc<AppState>,
        addr: std::net::SocketAddr,
        metrics_addr: Option<std::net::SocketAddr>,
        worker: WorkerConfig,
    ) -> std::io::Result<Farm> {
        Farm::start_with_tls(state, addr, metrics_addr, worker, None).await
    }

    /// `start_with_metrics`, the API over TLS when `tls` is set (the
    /// metrics listener, for a private network, stays plain HTTP).
    pub async fn start_with_tls(
        state: Arc<AppState>,
        addr: std::net::SocketAddr,
        metrics_addr: Option<std::net::SocketAddr>,
        worker: WorkerConfig,
        tls: Option<ServerTls>,
    ) -> std::io::Result<Farm> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match metrics_addr {
            Some(metrics_addr) => Some(tokio::net::TcpListener::bind(metrics_addr).await?),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let https = tls.is_some();
        let (stop_workers, stop_workers_receiver) = watch::channel(false);
        let (close_listeners, close_listeners_receiver) = watch::channel(false);
        let workers = match state.driver.clone() {
            Some(driver) => tokio::spawn(leanfarm_worker::run(
                InProcessQueue::new(Arc::clone(&state)),
                driver,
                worker,
                stop_workers_receiver.clone(),
            )),
            None => tokio::spawn(async {}),
        };
        let session_host = match state.driver.clone() {
            Some(driver) => {
                driver.set_max_session_repls(state.limits.sessions.max_sessions_per_host);
                tokio::spawn(leanfarm_worker::sessions::host_sessions(
                    InProcessSessionOps::new(Arc::clone(&state)),
                    driver,
                    leanfarm_worker::sessions::SessionHostConfig {
                        host: format!("embedded-{}", uuid::Uuid::new_v4()),
                        max_sessions: state.limits.sessions.max_sessions_per_host,
                        sweep_interval: Duration::from_secs(1),
                    },
                    stop_workers_receiver.clone(),
                ))
            }
            None => tokio::spawn(async {}),
        };
        tokio::spawn(sessions::sweep_until_shutdown(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        tokio::spawn(prove_runner::resume_until_shutdown(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        tokio::spawn(outbox::sweep_until_shutdown(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        tokio::spawn(retention::sweep_until_shutdown(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        tokio::spawn(work_wakeups::wake_on_work_until_shutdown(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        // Awaited on stop with the listeners, so that its row is removed.
        let heartbeat = tokio::spawn(auth::keep_replica_registered(
            Arc::clone(&state),
            close_listeners_receiver.clone(),
        ));
        let mut servers = vec![tokio::spawn(serve::serve(
            listener,
            router(Arc::clone(&state)),
            state.limits.clone(),
            tls,
            close_listeners_receiver.clone(),
        ))];
        servers.push(heartbeat);
        if let Some(metrics_listener) = metrics_listener {
            servers.push(tokio::spawn(serve::serve(
                metrics_listener,
                routes::metrics_router(Arc::clone(&state)),
                state.limits.clone(),
                None,
                close_listeners_receiver,
            )));
        }
        let slots = state.driver.as_ref().map_or(0, Driver::slots);
        tracing::info!(%local_addr, ?metrics_addr, https, slots, store = state.store.backend_name(), "lean farm is serving");
        Ok(Farm {
            local_addr,
            metrics_addr,
            https,
            stop_workers,
            close_listeners,
            servers,
            workers,
            session_host,
            state,
        })
    }

    /// Drain and stop: new work is refused (`503 shutting_down`) and
    /// `/readyz` answers 503 at once, while the listeners stay open; the
    /// workers finish their running checks (up to their drain deadline);
    /// then requests still waiting answer with what there is, the
    /// listeners close, and this returns.
    pub async fn stop(self) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        // Long-polled leases answer `shutting_down` now.
        self.state.enqueued.notify_waiters();
        let _ = self.stop_workers.send(true);
        let _ = self.workers.await;
        let _ = self.session_host.await;
        let _ = self.state.workers_stopped.send(true);
        let _ = self.close_listeners.send(true);
        for server in self.servers {
            let _ = server.await;
        }
    }
}
