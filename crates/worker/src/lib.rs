//! The worker loop of Lean Farm: lease jobs from a `JobQueue`, check each
//! with the driver, renew its lease while it runs, and complete it with the
//! verdict. `leanfarm worker` reaches its queue over HTTP (`HttpQueue`, the
//! `/v1/worker/*` endpoints); `leanfarm serve`'s embedded workers reach the
//! store through the server's in-process queue. `protocol` holds the worker
//! API's wire types, shared with the server's handlers.
//!
//! A Lean verdict is always final. Only a failure of the farm (the driver
//! could not run the check) releases the job for a retry with backoff.
//!
//! This crate must never know of HTTP servers (axum) or SQL: what follows a
//! stored verdict (metrics, artifacts, waking waiting requests) is the
//! server's business, on both paths.

mod http;
pub mod protocol;
mod queue;
mod signing;

pub use http::{HttpQueue, LEASE_WAIT_SECONDS};
pub use queue::{JobQueue, QueueError};
pub use signing::VerdictSigner;

use leanfarm_driver::Driver;
use leanfarm_store::{CompleteOutcome, Lease, WorkerOffer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How the worker loop leases and retries.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub worker_id: String,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// After a lease found no work, at most how long to wait before the
    /// next (`JobQueue::wait_for_work`); also the pause after a failed lease.
    pub poll_interval: Duration,
    /// Wait before a job released after an infrastructure failure runs again.
    pub retry_backoff: Duration,
    /// On shutdown, how long running checks may take before they are handed back.
    pub drain_deadline: Duration,
}

/// Run the loop until `shutdown` turns true, then drain.
pub async fn run<Queue: JobQueue>(
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
            claimed = queue.lease(&config.worker_id, permits.len(), config.lease, offer) => claimed,
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
            tokio::select! {
                _ = queue.wait_for_work(config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
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
async fn persistently<T, F, Fut>(
    what: &str,
    job_id: &str,
    mut operation: F,
) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
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

async fn run_job<Queue: JobQueue>(
    queue: Arc<Queue>,
    driver: Driver,
    config: WorkerConfig,
    lease: Lease,
    _permit: OwnedSemaphorePermit,
    mut abort: watch::Receiver<bool>,
) {
    let started = Instant::now();
    queue.check_started();
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
    queue.check_finished();
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
async fn heartbeat<Queue: JobQueue>(
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
        status = verdict.status().as_str(),
        reason = verdict.reason().map(|r| r.code.as_str()).unwrap_or(""),
        queued_ms = verdict.timings.queued_ms,
        header_ms = verdict.timings.header_ms,
        body_ms = verdict.timings.body_ms,
        repl_reused = verdict.repl_reused,
        peak_memory_bytes = verdict.peak_memory_bytes.unwrap_or(0),
        "attempt finished"
    );
}
