//! What follows a stored verdict on the server: the job's metrics, the
//! in-process notice that wakes requests waiting for it, and its artifacts
//! (written through the outbox: the store marked the job as owing them in
//! the verdict's transaction, and the mark is cleared once they are written).
//!
//! Both paths that store verdicts call `verdict_stored`: the worker API's
//! `complete` handler (remote workers) and the in-process queue (embedded
//! workers). It must be called once per stored verdict, and never for a
//! stale completion (nothing was written then).

use crate::outbox::write_artifacts;
use crate::AppState;
use leanfarm_core::Verdict;
use leanfarm_store::Lease;
use std::sync::Arc;

/// The variable that, in debug builds only, makes the process exit right
/// after a verdict is committed and before its artifacts are written: the
/// crash the outbox must repair (tests set it; release builds ignore it).
pub(crate) const CRASH_BEFORE_ARTIFACTS: &str = "LEAN_FARM_FAULT_CRASH_BEFORE_ARTIFACTS";

/// The exit status of that injected crash.
pub(crate) const CRASH_EXIT_STATUS: i32 = 86;

/// Record a verdict the store has just accepted for `lease`'s job, whose
/// check took `seconds`, and write its artifacts. A failed write is logged
/// and left to the outbox sweep.
pub(crate) async fn verdict_stored(
    state: &Arc<AppState>,
    lease: &Lease,
    verdict: Verdict,
    seconds: f64,
) {
    state.metrics.job_finished(
        &lease.tenant,
        verdict.status(),
        verdict.reason().map(|reason| reason.code),
        seconds,
    );
    let _ = state.completions.send(lease.job_id.clone());
    if cfg!(debug_assertions) && std::env::var_os(CRASH_BEFORE_ARTIFACTS).is_some() {
        tracing::error!(job_id = %lease.job_id, "injected crash between the verdict and its artifacts");
        std::process::exit(CRASH_EXIT_STATUS);
    }
    if let Err(error) = write_artifacts(state, &lease.job_id, &lease.request, &verdict).await {
        tracing::warn!(job_id = %lease.job_id, %error, "writing a job's artifacts failed; the outbox sweep writes them");
    }
}
