//! Retention: final jobs (`done` or `dead`) are deleted with their
//! artifacts once they are older than the policy keeps them: a `valid`
//! verdict (a proof) for `valid_for`, anything else (other verdicts,
//! cancelled and dead jobs) for `other_for`, counted from when the job
//! finished. `leanfarm gc` runs `collect_garbage` once; `leanfarm serve`
//! runs it every `sweep_interval` (`sweep_until_shutdown`).
//!
//! Several replicas may sweep at once: each deletes a job's artifacts
//! before its row, and deleting what another replica already deleted is not
//! an error, so a crash or a race leaves at worst a row whose artifacts are
//! gone, deleted by the next sweep. A job that still owes artifacts, or is
//! queued or running, is never deleted. Work is done in bounded batches.

use crate::AppState;
use leanfarm_store::artifacts::ArtifactError;
use leanfarm_store::{ArtifactStore, ExpiredJob, RetentionCutoffs, Store, StoreError, UnixMillis};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long final jobs are kept, and how the sweep goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// Jobs with a `valid` verdict are kept this long after they finished.
    pub valid_for: Duration,
    /// Every other final job is kept this long after it finished.
    pub other_for: Duration,
    /// How often `leanfarm serve` sweeps.
    pub sweep_interval: Duration,
    /// Jobs looked up and deleted per batch.
    pub batch_size: usize,
}

impl RetentionPolicy {
    /// The cutoffs at `now` (Unix milliseconds).
    pub fn cutoffs(&self, now: UnixMillis) -> RetentionCutoffs {
        let before = |kept: Duration| now.saturating_sub(kept.as_millis() as i64);
        RetentionCutoffs {
            valid_before: before(self.valid_for),
            other_before: before(self.other_for),
        }
    }
}

/// What a collection deleted (or, in a dry run, would delete).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GarbageReport {
    pub dry_run: bool,
    /// The expired jobs found (deleted unless this is a dry run).
    pub jobs: Vec<ExpiredJob>,
    /// Job rows deleted.
    pub deleted_jobs: u64,
    /// Artifact objects deleted.
    pub deleted_artifacts: usize,
    /// A dry run lists one batch: more jobs may have expired.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot delete the artifacts of job {job_id}: {source}")]
    Artifacts {
        job_id: String,
        #[source]
        source: ArtifactError,
    },
}

/// Delete the final jobs past their retention at `now` and their
/// artifacts, a batch at a time, until none is left; a dry run only lists
/// the first batch. When deleting one job's artifacts fails, the jobs of
/// its batch whose artifacts are gone are deleted, and the error returned
/// (the rest waits for the next run).
pub async fn collect_garbage(
    store: &Store,
    artifacts: &ArtifactStore,
    policy: &RetentionPolicy,
    now: UnixMillis,
    dry_run: bool,
) -> Result<GarbageReport, RetentionError> {
    let cutoffs = policy.cutoffs(now);
    let batch_size = policy.batch_size.max(1);
    let mut report = GarbageReport {
        dry_run,
        ..GarbageReport::default()
    };
    loop {
        let expired = store.expired_jobs(cutoffs, batch_size).await?;
        let full_batch = expired.len() == batch_size;
        if dry_run {
            report.truncated = full_batch;
            report.jobs = expired;
            return Ok(report);
        }
        let mut cleared = Vec::with_capacity(expired.len());
        let mut failure = None;
        for job in expired {
            match artifacts.delete_job(&job.id).await {
                Ok(deleted) => {
                    report.deleted_artifacts += deleted;
                    cleared.push(job);
                }
                Err(source) => {
                    failure = Some(RetentionError::Artifacts {
                        job_id: job.id.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        let ids: Vec<String> = cleared.iter().map(|job| job.id.clone()).collect();
        report.deleted_jobs += store.delete_final_jobs(&ids).await?;
        report.jobs.extend(cleared);
        if let Some(error) = failure {
            return Err(error);
        }
        if !full_batch {
            return Ok(report);
        }
        tokio::task::yield_now().await;
    }
}

/// Sweep at once, then every `sweep_interval`, until `shutdown` turns
/// true; nothing when the farm has no retention policy.
pub(crate) async fn sweep_until_shutdown(
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(policy) = state.retention.get().copied() else {
        return;
    };
    loop {
        if state.shutting_down.load(Ordering::Relaxed) || *shutdown.borrow() {
            return;
        }
        let now = leanfarm_store::now_millis();
        match collect_garbage(&state.store, &state.artifacts, &policy, now, false).await {
            Ok(report) if report.deleted_jobs == 0 => {}
            Ok(report) => tracing::info!(
                deleted_jobs = report.deleted_jobs,
                deleted_artifacts = report.deleted_artifacts,
                "retention deleted expired jobs"
            ),
            Err(error) => {
                tracing::warn!(%error, "the retention sweep failed; the next sweep tries again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(policy.sweep_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}
