//! The worker loop: lease jobs from the store, check them with the driver,
//! complete them. The in-process workers of `leanfarm serve` run this loop;
//! it reaches the queue only through `Store` calls (claim, renew, complete,
//! release), so the same protocol can be spoken over HTTP by remote workers.
//!
//! A Lean verdict is always final. Only a failure of the farm (the driver
//! could not run the check) releases the job for a retry with backoff.

use crate::AppState;
use leanfarm_driver::Driver;
use leanfarm_store::{CompleteOutcome, Lease};
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

/// Run the loop until `shutdown` turns true, then drain.
pub async fn run(state: Arc<AppState>, config: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(state.driver.slots()));
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
        let warm_headers = state.driver.warm_headers();
        let claimed = state
            .store
            .claim(
                &config.worker_id,
                permits.len(),
                config.lease,
                &warm_headers,
            )
            .await;
        let leases = match claimed {
            Ok(leases) => leases,
            Err(error) => {
                tracing::warn!(%error, "claiming jobs failed; retrying");
                drop(permits);
                sleep_or_shutdown(config.poll_interval, &mut shutdown).await;
                continue;
            }
        };
        if leases.is_empty() {
            drop(permits);
            tokio::select! {
                _ = state.enqueued.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for (lease, permit) in leases.into_iter().zip(permits) {
            tokio::spawn(run_job(
                Arc::clone(&state),
                config.clone(),
                lease,
                permit,
                abort.clone(),
            ));
        }
    }
    // Drain: running checks may finish until the deadline; then they hand their jobs back.
    let all = state.driver.slots() as u32;
    let drained = tokio::time::timeout(config.drain_deadline, slots.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(deadline = ?config.drain_deadline, "checks still running at the drain deadline; handing their jobs back");
        let _ = abort_sender.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
    }
    state.driver.shutdown().await;
}

async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

async fn run_job(
    state: Arc<AppState>,
    config: WorkerConfig,
    lease: Lease,
    _permit: OwnedSemaphorePermit,
    mut abort: watch::Receiver<bool>,
) {
    let started = Instant::now();
    state.metrics.worker_started();
    let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heartbeat = tokio::spawn(heartbeat(
        Arc::clone(&state),
        config.clone(),
        lease.clone(),
        Arc::clone(&held),
    ));
    let outcome = tokio::select! {
        outcome = state.driver.check(&lease.request) => Some(outcome),
        _ = abort.wait_for(|aborted| *aborted) => None,
        _ = lease_lost(&held) => None,
    };
    heartbeat.abort();
    state.metrics.worker_finished();
    let job_id = lease.job_id.as_str();
    match outcome {
        Some(Ok(verdict)) => match state
            .store
            .complete(job_id, &lease.lease_id, &verdict)
            .await
        {
            Ok(CompleteOutcome::Stored) => {
                state
                    .metrics
                    .job_finished(verdict.status, started.elapsed().as_secs_f64());
                log_attempt(&lease, &verdict, state.driver.toolchain().name.as_str());
                let _ = state.completions.send(lease.job_id.clone());
                tokio::spawn(write_artifacts(Arc::clone(&state), lease, verdict));
            }
            Ok(CompleteOutcome::Stale) => {
                tracing::warn!(job_id, "lease lost before completion; result discarded")
            }
            Err(error) => {
                tracing::error!(job_id, %error, "storing a verdict failed; the job will be leased again")
            }
        },
        Some(Err(error)) => {
            tracing::warn!(job_id, %error, "check could not run; releasing the job for a retry");
            if let Err(store_error) = state
                .store
                .release(
                    job_id,
                    &lease.lease_id,
                    &error.to_string(),
                    config.retry_backoff,
                )
                .await
            {
                tracing::error!(job_id, %store_error, "releasing a job failed; its lease will expire");
            }
        }
        None if !held.load(std::sync::atomic::Ordering::Relaxed) => {
            tracing::warn!(job_id, "lease lost while checking; abandoned");
        }
        None => {
            if let Err(store_error) = state
                .store
                .release(job_id, &lease.lease_id, "worker shut down", Duration::ZERO)
                .await
            {
                tracing::error!(job_id, %store_error, "handing a job back failed; its lease will expire");
            }
        }
    }
}

/// Renew the lease every third of its length; clear `held` when it is lost.
async fn heartbeat(
    state: Arc<AppState>,
    config: WorkerConfig,
    lease: Lease,
    held: Arc<std::sync::atomic::AtomicBool>,
) {
    let pair = [(lease.job_id.clone(), lease.lease_id.clone())];
    loop {
        tokio::time::sleep(config.lease / 3).await;
        match state.store.renew(&pair, config.lease).await {
            Ok(still_held) if still_held.first() == Some(&true) => {}
            Ok(_) => {
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
