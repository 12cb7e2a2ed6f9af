//! What a worker process counts about itself, for its own `/metrics` and
//! `/readyz` (served by `leanfarm worker --metrics-addr`): checks finished
//! by verdict status, and whether an API replica has answered a lease.

use leanfarm_core::CheckStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Shared counters of one worker loop; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    jobs_by_status: [AtomicU64; CheckStatus::ALL.len()],
    lease_answered: AtomicBool,
    checks_running: AtomicU64,
}

impl WorkerStats {
    /// A check on this worker reached a verdict with `status`.
    pub fn job_checked(&self, status: CheckStatus) {
        let index = CheckStatus::ALL
            .iter()
            .position(|listed| *listed == status)
            .expect("every status is listed");
        self.inner.jobs_by_status[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A check began on one of the worker's slots.
    pub fn check_started(&self) {
        self.inner.checks_running.fetch_add(1, Ordering::Relaxed);
    }

    /// A check ended, whatever its outcome.
    pub fn check_finished(&self) {
        self.inner.checks_running.fetch_sub(1, Ordering::Relaxed);
    }

    /// Checks running now (the worker's busy slots).
    pub fn checks_running(&self) -> u64 {
        self.inner.checks_running.load(Ordering::Relaxed)
    }

    /// A lease call was answered (with jobs or without).
    pub fn lease_answered(&self) {
        self.inner.lease_answered.store(true, Ordering::Relaxed);
    }

    /// Whether an API replica has answered a lease since the worker started.
    pub fn has_lease_answer(&self) -> bool {
        self.inner.lease_answered.load(Ordering::Relaxed)
    }

    /// Checks finished, per status, in `CheckStatus::ALL` order.
    pub fn jobs_by_status(&self) -> Vec<(CheckStatus, u64)> {
        CheckStatus::ALL
            .iter()
            .zip(&self.inner.jobs_by_status)
            .map(|(status, count)| (*status, count.load(Ordering::Relaxed)))
            .collect()
    }
}
