//! `InProcessQueue`: the `JobQueue` of `leanfarm serve`'s embedded workers,
//! straight over this process's store, with the same effects after a stored
//! verdict as a remote worker's completion (`completion::verdict_stored`).
//! When the farm has its own signing keys, each verdict is signed with them
//! and stored with its attestation in the same transaction.
//!
//! It must never change a job's state except through `Store`.

use crate::completion::verdict_stored;
use crate::AppState;
use leanfarm_core::Verdict;
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, WorkerAuthority, WorkerOffer};
use leanfarm_worker::{JobQueue, QueueError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The queue of the in-process workers: the store of `state`.
pub struct InProcessQueue {
    state: Arc<AppState>,
}

impl InProcessQueue {
    pub fn new(state: Arc<AppState>) -> InProcessQueue {
        InProcessQueue { state }
    }
}

impl JobQueue for InProcessQueue {
    async fn lease(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: WorkerOffer,
    ) -> Result<Vec<Lease>, QueueError> {
        Ok(self
            .state
            .store
            .claim(worker_id, max, lease, &offer)
            .await?)
    }

    async fn renew(&self, lease: &Lease, duration: Duration) -> Result<bool, QueueError> {
        let held = self
            .state
            .store
            .renew(&[(lease.job_id.clone(), lease.lease_id.clone())], duration)
            .await?;
        Ok(held.first() == Some(&true))
    }

    async fn complete(
        &self,
        lease: &Lease,
        verdict: &Verdict,
        started: Instant,
    ) -> Result<CompleteOutcome, QueueError> {
        let attestation = crate::keys::farm_attestation(&self.state, lease, verdict)?;
        let outcome = self
            .state
            .store
            .complete_attested_as(
                &WorkerAuthority::Farm,
                &lease.job_id,
                &lease.lease_id,
                verdict,
                attestation.as_deref(),
            )
            .await?;
        if outcome == CompleteOutcome::Stored {
            verdict_stored(
                &self.state,
                lease,
                verdict.clone(),
                started.elapsed().as_secs_f64(),
            )
            .await;
        }
        Ok(outcome)
    }

    async fn release(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, QueueError> {
        Ok(self
            .state
            .store
            .release(&lease.job_id, &lease.lease_id, error, retry_after)
            .await?)
    }

    /// Until this process enqueues work, or `poll_interval` passes (another
    /// replica may have enqueued).
    async fn wait_for_work(&self, poll_interval: Duration) {
        tokio::select! {
            _ = self.state.enqueued.notified() => {}
            _ = tokio::time::sleep(poll_interval) => {}
        }
    }
}
