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
//! A verdict is never thrown away: it is kept (in the `spool` on disk for
//! `leanfarm worker`, in memory for the embedded workers) and reported with
//! backoff for as long as an outage lasts, until the farm stores it or
//! answers that the job is leased elsewhere (`stale`). While the pending
//! verdicts fill the spool, the worker leases no new work; a job it holds a
//! verdict for is never checked again, only reported under its new lease.
//!
//! This crate must never know of HTTP servers (axum) or SQL: what follows a
//! stored verdict (metrics, artifacts, waking waiting requests) is the
//! server's business, on both paths.

mod http;
pub mod protocol;
mod queue;
pub mod sessions;
mod signing;
pub mod spool;
mod stats;
pub mod tls;
pub mod trace_context;

pub use http::{HttpQueue, LEASE_WAIT_SECONDS};
pub use queue::{JobQueue, QueueError};
pub use signing::VerdictSigner;
pub use spool::{Spool, SpoolError, SpooledVerdict};
pub use stats::WorkerStats;

use leanfarm_driver::Driver;
use leanfarm_store::{CompleteOutcome, Lease, WorkerOffer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// Verdicts held in memory only (no spool) at most, before leasing stops.
const PENDING_IN_MEMORY_CAPACITY: usize = 1024;

/// The first pause after a failed report, doubled after each failure up to
/// `Reporting::max_backoff`.
const REPORT_FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Where a worker keeps the verdicts it has not stored yet, and how it
/// retries them.
#[derive(Clone, Debug)]
pub struct Reporting {
    /// The on-disk spool; `None` keeps them in memory only (lost if the
    /// process dies, as the embedded workers' die with their store's server).
    pub spool: Option<Spool>,
    /// The longest pause between two reports of one verdict.
    pub max_backoff: Duration,
    /// Counters the loop keeps for the worker's own metrics.
    pub stats: WorkerStats,
}

impl Default for Reporting {
    fn default() -> Reporting {
        Reporting {
            spool: None,
            max_backoff: Duration::from_secs(5),
            stats: WorkerStats::default(),
        }
    }
}

/// The verdicts this worker holds and has not stored yet, by job id, each
/// with the lease it is reported under and when its check began.
#[derive(Clone)]
struct Pending {
    verdicts: Arc<Mutex<HashMap<String, (SpooledVerdict, Instant)>>>,
    spool: Option<Spool>,
    max_backoff: Duration,
    /// Held while the spool's files change, with the map changed alongside,
    /// so that a file never outlives its entry.
    spool_io: Arc<tokio::sync::Mutex<()>>,
    /// Turns true at shutdown: reports of spooled verdicts stop (the spool
    /// keeps them for the next start).
    shutdown: watch::Receiver<bool>,
    /// The worker's own counters (its metrics).
    stats: WorkerStats,
}

impl Pending {
    fn len(&self) -> usize {
        self.verdicts.lock().expect("pending lock").len()
    }

    fn capacity(&self) -> usize {
        self.spool
            .as_ref()
            .map_or(PENDING_IN_MEMORY_CAPACITY, Spool::capacity)
    }

    fn current(&self, job_id: &str) -> Option<(SpooledVerdict, Instant)> {
        self.verdicts
            .lock()
            .expect("pending lock")
            .get(job_id)
            .cloned()
    }

    /// Keep a verdict until it is stored: on disk first (fsynced), then here.
    async fn hold(&self, entry: SpooledVerdict, started: Instant) {
        let _io = self.spool_io.lock().await;
        if let Some(spool) = self.spool.clone() {
            let job_id = entry.lease.job_id.clone();
            let to_write = entry.clone();
            let written = tokio::task::spawn_blocking(move || spool.hold(&to_write)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%job_id, %error, "spooling a verdict failed; it is kept in memory only")
                }
                Err(error) => {
                    tracing::error!(%job_id, %error, "spooling a verdict failed; it is kept in memory only")
                }
            }
        }
        self.verdicts
            .lock()
            .expect("pending lock")
            .insert(entry.lease.job_id.clone(), (entry, started));
    }

    /// A new lease on a job whose verdict is held: report under it. Returns
    /// false when no verdict is held for the job.
    async fn take_new_lease(&self, lease: &Lease) -> bool {
        let _io = self.spool_io.lock().await;
        let updated = {
            let mut verdicts = self.verdicts.lock().expect("pending lock");
            match verdicts.get_mut(&lease.job_id) {
                Some((entry, _)) => {
                    entry.lease = lease.clone();
                    Some(entry.clone())
                }
                None => None,
            }
        };
        match updated {
            Some(entry) => {
                if let Some(spool) = self.spool.clone() {
                    let _ = tokio::task::spawn_blocking(move || spool.hold(&entry)).await;
                }
                true
            }
            None => false,
        }
    }

    /// Forget a job's verdict if it is still held under `lease_id`; false
    /// when a newer lease came in meanwhile (report again under it).
    async fn forget(&self, job_id: &str, lease_id: &str) -> bool {
        let _io = self.spool_io.lock().await;
        {
            let mut verdicts = self.verdicts.lock().expect("pending lock");
            match verdicts.get(job_id) {
                Some((entry, _)) if entry.lease.lease_id != lease_id => return false,
                _ => {
                    verdicts.remove(job_id);
                }
            }
        }
        if let Some(spool) = self.spool.clone() {
            let job_id = job_id.to_string();
            let removed = tokio::task::spawn_blocking(move || spool.forget(&job_id)).await;
            if let Ok(Err(error)) = removed {
                tracing::error!(%error, "removing a reported verdict from the spool failed");
            }
        }
        true
    }
}

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

/// Run the loop until `shutdown` turns true, then drain; verdicts not yet
/// stored are kept in memory.
pub async fn run<Queue: JobQueue>(
    queue: Queue,
    driver: Driver,
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) {
    run_with_reporting(queue, driver, config, Reporting::default(), shutdown).await
}

/// Run the loop, keeping the verdicts not yet stored as `reporting` says:
/// a spool's verdicts are reported first, then the loop leases until
/// `shutdown` turns true, then drains.
pub async fn run_with_reporting<Queue: JobQueue>(
    queue: Queue,
    driver: Driver,
    config: WorkerConfig,
    reporting: Reporting,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = Arc::new(queue);
    let spool = reporting.spool.clone();
    let stats = reporting.stats.clone();
    let pending = Pending {
        verdicts: Arc::default(),
        spool: reporting.spool,
        max_backoff: reporting.max_backoff,
        spool_io: Arc::default(),
        shutdown: shutdown.clone(),
        stats: reporting.stats,
    };
    report_spool_first(&queue, &driver, &pending).await;
    let slots = Arc::new(Semaphore::new(driver.slots()));
    let (abort_sender, abort) = watch::channel(false);
    let mut spool_was_full = false;
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
        // Every check running or about to run may add a verdict to hold:
        // lease only as many as the spool has room for.
        let running = driver.slots().saturating_sub(permits.len());
        let room = pending.capacity().saturating_sub(pending.len() + running);
        if room == 0 {
            drop(permits);
            if !spool_was_full {
                tracing::warn!(
                    held = pending.len(),
                    "the verdicts not yet stored fill the spool; leasing no new work until they are"
                );
            }
            spool_was_full = true;
            sleep_or_shutdown(config.poll_interval, &mut shutdown).await;
            continue;
        }
        if spool_was_full {
            tracing::info!(held = pending.len(), "the spool has room again; leasing");
            spool_was_full = false;
        }
        permits.truncate(room);
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
            Ok(leases) => {
                stats.lease_answered();
                leases
            }
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
            if pending.take_new_lease(&lease).await {
                tracing::info!(job_id = %lease.job_id, "leased a job whose verdict this worker holds; reporting it, not checking again");
                continue;
            }
            let check_span = job_spans(&config.worker_id, &lease);
            tokio::spawn(
                run_job(
                    Arc::clone(&queue),
                    driver.clone(),
                    config.clone(),
                    pending.clone(),
                    lease,
                    permit,
                    abort.clone(),
                )
                .instrument(check_span),
            );
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
    if spool.is_none() {
        // Held in memory only: give their reports until the drain deadline.
        let deadline = Instant::now() + config.drain_deadline;
        while pending.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if pending.len() > 0 {
            tracing::error!(
                held = pending.len(),
                "verdicts not stored by the drain deadline; their jobs will be leased again"
            );
        }
    }
    driver.shutdown().await;
}

/// The spans of one leased job, continuing the trace of its submission
/// (`trace_context`): `worker.lease` (the lease, closed at once) and its
/// child `worker.check` (the check and the report of its verdict), which
/// the caller runs the job in.
fn job_spans(worker_id: &str, lease: &Lease) -> tracing::Span {
    let lease_span = tracing::info_span!(
        "worker.lease",
        job_id = %lease.job_id,
        attempt = lease.attempt,
        worker_id,
    );
    trace_context::continue_trace(&lease_span, lease.request.trace_context.as_deref());
    tracing::info_span!(
        parent: &lease_span,
        "worker.check",
        job_id = %lease.job_id,
        attempt = lease.attempt,
        worker_id,
    )
}

/// Report the spool's verdicts (left by an earlier run of this worker) once
/// each before leasing; those the farm does not take yet are reported on in
/// the background.
async fn report_spool_first<Queue: JobQueue>(
    queue: &Arc<Queue>,
    driver: &Driver,
    pending: &Pending,
) {
    let Some(spool) = &pending.spool else { return };
    let entries = match spool.readable_entries() {
        Ok((entries, unreadable)) => {
            for error in unreadable {
                tracing::error!(%error, "a spooled verdict cannot be read; set aside, its job will be leased again");
            }
            entries
        }
        Err(error) => {
            tracing::error!(%error, "reading the verdict spool failed; its verdicts are not reported");
            return;
        }
    };
    if entries.is_empty() {
        return;
    }
    tracing::info!(count = entries.len(), spool = %spool.directory().display(), "reporting spooled verdicts before leasing");
    let toolchain = driver.toolchain().name.clone();
    for entry in entries {
        let job_id = entry.lease.job_id.clone();
        pending
            .verdicts
            .lock()
            .expect("pending lock")
            .insert(job_id.clone(), (entry, Instant::now()));
        if !report_once(queue, pending, &job_id, &toolchain).await {
            tokio::spawn(report_until_settled(
                Arc::clone(queue),
                pending.clone(),
                job_id,
                toolchain.clone(),
            ));
        }
    }
}

async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

/// Report a held verdict once. True when it is settled (stored, or the job
/// is leased elsewhere) and forgotten; false when it must be tried again.
async fn report_once<Queue: JobQueue>(
    queue: &Arc<Queue>,
    pending: &Pending,
    job_id: &str,
    toolchain: &str,
) -> bool {
    let Some((entry, started)) = pending.current(job_id) else {
        return true;
    };
    match queue.complete(&entry.lease, &entry.verdict, started).await {
        Ok(CompleteOutcome::Stored) => {
            log_attempt(&entry.lease, &entry.verdict, toolchain);
            pending.forget(job_id, &entry.lease.lease_id).await
        }
        Ok(CompleteOutcome::Stale) => {
            let forgotten = pending.forget(job_id, &entry.lease.lease_id).await;
            if forgotten {
                tracing::warn!(
                    job_id,
                    "the job is leased elsewhere or already done; verdict dropped"
                );
            }
            forgotten
        }
        Err(error) if error.is_refused_for_good() => {
            tracing::error!(job_id, %error, "the farm refuses this verdict for good; dropped, the job will be leased again");
            pending.forget(job_id, &entry.lease.lease_id).await
        }
        Err(error) => {
            tracing::warn!(job_id, %error, "storing a verdict failed; it is kept and tried again");
            false
        }
    }
}

/// Report a held verdict with backoff until it is settled, however long
/// the farm stays unreachable.
async fn report_until_settled<Queue: JobQueue>(
    queue: Arc<Queue>,
    pending: Pending,
    job_id: String,
    toolchain: String,
) {
    let mut delay = REPORT_FIRST_BACKOFF.min(pending.max_backoff);
    let mut shutdown = pending.shutdown.clone();
    loop {
        if report_once(&queue, &pending, &job_id, &toolchain).await {
            return;
        }
        if pending.spool.is_some() && *shutdown.borrow() {
            tracing::info!(%job_id, "verdict left in the spool for the next start");
            return;
        }
        if pending.spool.is_some() {
            sleep_or_shutdown(delay, &mut shutdown).await;
        } else {
            tokio::time::sleep(delay).await;
        }
        delay = (delay * 2).min(pending.max_backoff);
    }
}

/// Try an operation on the queue a few times: a release must not be
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
    pending: Pending,
    lease: Lease,
    permit: OwnedSemaphorePermit,
    mut abort: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let stats = pending.stats.clone();
    tracing::info!(job_id = %lease.job_id, attempt = lease.attempt, "check started");
    queue.check_started();
    stats.check_started();
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
    stats.check_finished();
    let job_id = lease.job_id.as_str();
    match outcome {
        Some(Ok(verdict)) => {
            stats.job_checked(verdict.status());
            let entry = SpooledVerdict {
                lease: lease.clone(),
                verdict,
            };
            pending.hold(entry, started).await;
            tracing::info!(job_id, "verdict held until stored");
            // The check is done: its slot is free while the verdict is reported.
            drop(permit);
            report_until_settled(
                queue,
                pending,
                lease.job_id.clone(),
                driver.toolchain().name.clone(),
            )
            .await;
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
