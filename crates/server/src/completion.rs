//! What follows a stored verdict on the server: the job's metrics, the
//! in-process notice that wakes requests waiting for it, and its artifacts.
//!
//! Both paths that store verdicts call `verdict_stored`: the worker API's
//! `complete` handler (remote workers) and the in-process queue (embedded
//! workers). It must be called once per stored verdict, and never for a
//! stale completion (nothing was written then).

use crate::AppState;
use leanfarm_core::Verdict;
use leanfarm_store::Lease;
use std::sync::Arc;

/// Record a verdict the store has just accepted for `lease`'s job, whose
/// check took `seconds`.
pub(crate) fn verdict_stored(state: &Arc<AppState>, lease: &Lease, verdict: Verdict, seconds: f64) {
    state
        .metrics
        .job_finished(&lease.tenant, verdict.status(), seconds);
    let _ = state.completions.send(lease.job_id.clone());
    tokio::spawn(write_artifacts(Arc::clone(state), lease.clone(), verdict));
}

async fn write_artifacts(state: Arc<AppState>, lease: Lease, verdict: Verdict) {
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
