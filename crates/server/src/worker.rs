//! The worker loop: lease jobs, check them with the driver, complete them.
//! The in-process workers of `leanfarm serve` reach the queue through the
//! store (`Queue::Local`); `leanfarm worker` reaches it over HTTP
//! (`Queue::Remote`, the `/v1/worker/*` endpoints), with the same four
//! operations: lease, renew, complete, release.
//!
//! A Lean verdict is always final. Only a failure of the farm (the driver
//! could not run the check) releases the job for a retry with backoff.

use crate::remote::{
    CompleteRequest, CompleteResponse, LeaseRef, LeaseRequest, LeaseResponse, ReleaseRequest,
    ReleaseResponse, RenewRequest, RenewResponse,
};
use crate::AppState;
use leanfarm_core::Verdict;
use leanfarm_driver::Driver;
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, WorkerOffer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How the worker loop leases and retries.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub worker_id: String,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often the store is polled when no enqueue was seen in-process.
    pub poll_interval: Duration,
    /// Wait before a job released after an infrastructure failure runs again.
    pub retry_backoff: Duration,
    /// On shutdown, how long running checks may take before they are handed back.
    pub drain_deadline: Duration,
}

/// Where the loop gets its work.
pub enum Queue {
    /// The store of this process (`leanfarm serve`).
    Local(Arc<AppState>),
    /// A farm's worker API over HTTP (`leanfarm worker`).
    Remote(RemoteQueue),
}

/// A client of the `/v1/worker/*` endpoints.
pub struct RemoteQueue {
    client: reqwest::Client,
    base_url: String,
    token: String,
}

/// How long a remote lease request waits on the server for work.
const REMOTE_LEASE_WAIT_SECONDS: f64 = 10.0;

impl RemoteQueue {
    pub fn new(base_url: &str, token: &str) -> RemoteQueue {
        RemoteQueue {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn call<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<A, String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|error| format!("{path}: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("{path}: {status}: {text}"));
        }
        response
            .json()
            .await
            .map_err(|error| format!("{path}: {error}"))
    }
}

impl Queue {
    async fn claim(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: WorkerOffer,
    ) -> Result<Vec<Lease>, String> {
        match self {
            Queue::Local(state) => state
                .store
                .claim(worker_id, max, lease, &offer)
                .await
                .map_err(|e| e.to_string()),
            Queue::Remote(remote) => {
                let request = LeaseRequest {
                    worker_id: worker_id.to_string(),
                    max,
                    lease_seconds: lease.as_secs_f64(),
                    warm_headers: offer.warm_headers,
                    wait_seconds: REMOTE_LEASE_WAIT_SECONDS,
                    toolchain: offer.toolchain,
                    project: offer.project,
                };
                remote
                    .call::<_, LeaseResponse>("/v1/worker/lease", &request)
                    .await
                    .map(|r| r.leases)
            }
        }
    }

    async fn renew(&self, lease: &Lease, duration: Duration) -> Result<bool, String> {
        match self {
            Queue::Local(state) => state
                .store
                .renew(&[(lease.job_id.clone(), lease.lease_id.clone())], duration)
                .await
                .map(|held| held.first() == Some(&true))
                .map_err(|e| e.to_string()),
            Queue::Remote(remote) => {
                let request = RenewRequest {
                    leases: vec![LeaseRef {
                        job_id: lease.job_id.clone(),
                        lease_id: lease.lease_id.clone(),
                    }],
                    lease_seconds: duration.as_secs_f64(),
                };
                remote
                    .call::<_, RenewResponse>("/v1/worker/renew", &request)
                    .await
                    .map(|r| r.held.first() == Some(&true))
            }
        }
    }

    async fn complete(
        &self,
        lease: &Lease,
        verdict: &Verdict,
        started: Instant,
    ) -> Result<CompleteOutcome, String> {
        match self {
            Queue::Local(state) => {
                let outcome = state
                    .store
                    .complete(&lease.job_id, &lease.lease_id, verdict)
                    .await
                    .map_err(|e| e.to_string())?;
                if outcome == CompleteOutcome::Stored {
                    finished(
                        state,
                        lease,
                        verdict.clone(),
                        started.elapsed().as_secs_f64(),
                    );
                }
                Ok(outcome)
            }
            Queue::Remote(remote) => {
                let request = CompleteRequest {
                    job_id: lease.job_id.clone(),
                    lease_id: lease.lease_id.clone(),
                    verdict: verdict.clone(),
                };
                remote
                    .call::<_, CompleteResponse>("/v1/worker/complete", &request)
                    .await
                    .map(|r| r.outcome)
            }
        }
    }

    async fn release(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, String> {
        match self {
            Queue::Local(state) => state
                .store
                .release(&lease.job_id, &lease.lease_id, error, retry_after)
                .await
                .map_err(|e| e.to_string()),
            Queue::Remote(remote) => {
                let request = ReleaseRequest {
                    job_id: lease.job_id.clone(),
                    lease_id: lease.lease_id.clone(),
                    error: error.to_string(),
                    retry_after_seconds: retry_after.as_secs_f64(),
                };
                remote
                    .call::<_, ReleaseResponse>("/v1/worker/release", &request)
                    .await
                    .map(|r| r.outcome)
            }
        }
    }

    /// Wait for work after an empty claim (a remote claim already waited on the server).
    async fn idle(&self, poll: Duration, shutdown: &mut watch::Receiver<bool>) {
        match self {
            Queue::Local(state) => {
                tokio::select! {
                    _ = state.enqueued.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Queue::Remote(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    fn metrics(&self) -> Option<&crate::Metrics> {
        match self {
            Queue::Local(state) => Some(&state.metrics),
            Queue::Remote(_) => None,
        }
    }
}

/// What follows a stored verdict on the server: metrics, the in-process
/// notice to waiting requests, and the job's artifacts.
pub(crate) fn finished(state: &Arc<AppState>, lease: &Lease, verdict: Verdict, seconds: f64) {
    state
        .metrics
        .job_finished(&lease.tenant, verdict.status, seconds);
    let _ = state.completions.send(lease.job_id.clone());
    tokio::spawn(write_artifacts(Arc::clone(state), lease.clone(), verdict));
}

/// Run the loop until `shutdown` turns true, then drain.
pub async fn run(
    queue: Queue,
    driver: Driver,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = Arc::new(queue);
    let slots = Arc::new(Semaphore::new(driver.slots()));
    let (abort_sender, abort) = watch::channel(false);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("slots semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(permit);
        }
        let offer = WorkerOffer {
            toolchain: Some(driver.toolchain().name.clone()),
            project: Some(driver.toolchain().project_name.clone()),
            warm_headers: driver.warm_headers(),
        };
        let claimed = tokio::select! {
            claimed = queue.claim(&config.worker_id, permits.len(), config.lease, offer) => claimed,
            _ = shutdown.changed() => break,
        };
        let leases = match claimed {
            Ok(leases) => leases,
            Err(error) => {
                tracing::warn!(%error, "leasing jobs failed; retrying");
                drop(permits);
                sleep_or_shutdown(config.poll_interval, &mut shutdown).await;
                continue;
            }
        };
        if leases.is_empty() {
            drop(permits);
            queue.idle(config.poll_interval, &mut shutdown).await;
            continue;
        }
        // More leases than permits cannot come back; extra permits are freed.
        for (lease, permit) in leases.into_iter().zip(permits) {
            tokio::spawn(run_job(
                Arc::clone(&queue),
                driver.clone(),
                config.clone(),
                lease,
                permit,
                abort.clone(),
            ));
        }
    }
    // Drain: running checks may finish until the deadline; then they hand their jobs back.
    let all = driver.slots() as u32;
    let drained = tokio::time::timeout(config.drain_deadline, slots.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(deadline = ?config.drain_deadline, "checks still running at the drain deadline; handing their jobs back");
        let _ = abort_sender.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
    }
    driver.shutdown().await;
}

async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

/// Try an operation on the queue a few times: a completion must not be
/// lost to a short outage of the store or the network.
async fn persistently<T, F, Fut>(what: &str, job_id: &str, mut operation: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < 8 => {
                tracing::warn!(job_id, %error, "{what} failed; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                tries += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn run_job(
    queue: Arc<Queue>,
    driver: Driver,
    config: WorkerConfig,
    lease: Lease,
    _permit: OwnedSemaphorePermit,
    mut abort: watch::Receiver<bool>,
) {
    let started = Instant::now();
    if let Some(metrics) = queue.metrics() {
        metrics.worker_started();
    }
    let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heartbeat = tokio::spawn(heartbeat(
        Arc::clone(&queue),
        config.clone(),
        lease.clone(),
        Arc::clone(&held),
    ));
    let outcome = tokio::select! {
        outcome = driver.check(&lease.request) => Some(outcome),
        _ = abort.wait_for(|aborted| *aborted) => None,
        _ = lease_lost(&held) => None,
    };
    heartbeat.abort();
    if let Some(metrics) = queue.metrics() {
        metrics.worker_finished();
    }
    let job_id = lease.job_id.as_str();
    match outcome {
        Some(Ok(verdict)) => {
            let stored = persistently("storing a verdict", job_id, || {
                queue.complete(&lease, &verdict, started)
            })
            .await;
            match stored {
                Ok(CompleteOutcome::Stored) => {
                    log_attempt(&lease, &verdict, driver.toolchain().name.as_str())
                }
                Ok(CompleteOutcome::Stale) => {
                    tracing::warn!(job_id, "lease lost before completion; result discarded")
                }
                Err(error) => {
                    tracing::error!(job_id, %error, "storing a verdict failed; the job will be leased again")
                }
            }
        }
        Some(Err(error)) => {
            tracing::warn!(job_id, %error, "check could not run; releasing the job for a retry");
            let error = error.to_string();
            let released = persistently("releasing a job", job_id, || {
                queue.release(&lease, &error, config.retry_backoff)
            })
            .await;
            if let Err(error) = released {
                tracing::error!(job_id, %error, "releasing a job failed; its lease will expire");
            }
        }
        None if !held.load(std::sync::atomic::Ordering::Relaxed) => {
            tracing::warn!(job_id, "lease lost while checking; abandoned");
        }
        None => {
            if let Err(error) = queue
                .release(&lease, "worker shut down", Duration::ZERO)
                .await
            {
                tracing::error!(job_id, %error, "handing a job back failed; its lease will expire");
            }
        }
    }
}

/// Renew the lease every third of its length; clear `held` when it is lost.
async fn heartbeat(
    queue: Arc<Queue>,
    config: WorkerConfig,
    lease: Lease,
    held: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::time::sleep(config.lease / 3).await;
        match queue.renew(&lease, config.lease).await {
            Ok(true) => {}
            Ok(false) => {
                held.store(false, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(error) => tracing::warn!(job_id = %lease.job_id, %error, "renewing a lease failed"),
        }
    }
}

async fn lease_lost(held: &std::sync::atomic::AtomicBool) {
    while held.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_attempt(lease: &Lease, verdict: &leanfarm_core::Verdict, toolchain: &str) {
    use sha2::Digest;
    let snippet_hash = hex::encode(sha2::Sha256::digest(lease.request.code.as_bytes()));
    tracing::info!(
        job_id = %lease.job_id,
        attempt = lease.attempt,
        snippet_sha256 = %snippet_hash,
        toolchain,
        header = %Driver::header_key(&lease.request.code),
        status = verdict.status.as_str(),
        reason = verdict.reason.as_ref().map(|r| r.code.as_str()).unwrap_or(""),
        queued_ms = verdict.timings.queued_ms,
        header_ms = verdict.timings.header_ms,
        body_ms = verdict.timings.body_ms,
        repl_reused = verdict.repl_reused,
        peak_memory_bytes = verdict.peak_memory_bytes.unwrap_or(0),
        "attempt finished"
    );
}

async fn write_artifacts(state: Arc<AppState>, lease: Lease, verdict: leanfarm_core::Verdict) {
    let job_id = lease.job_id.as_str();
    let files = [
        ("input.json", serde_json::to_vec_pretty(&lease.request)),
        ("summary.json", serde_json::to_vec_pretty(&verdict)),
        (
            "messages.json",
            serde_json::to_vec_pretty(&verdict.messages),
        ),
    ];
    for (name, bytes) in files {
        let Ok(bytes) = bytes else { continue };
        if let Err(error) = state.artifacts.put(job_id, name, bytes.into()).await {
            tracing::warn!(job_id, name, %error, "writing an artifact failed");
        }
    }
}
