//! The artifacts outbox: a stored verdict owes its artifacts (`input.json`,
//! `summary.json`, `messages.json`: `VERDICT_ARTIFACTS`) until they are
//! written. The store records the names owed in the verdict's own
//! transaction; whichever replica wrote them clears the record. Every replica sweeps the outbox when it starts and
//! every `SWEEP_INTERVAL`, so a replica killed between the commit and the
//! writes leaves no verdict without its artifacts.
//!
//! This module must never clear a mark before every file of the job is
//! written, and never changes a job's state (only its outbox mark).

use crate::AppState;
use leanfarm_core::{CheckRequest, Verdict};
use leanfarm_store::artifacts::{ArtifactError, VERDICT_ARTIFACTS};
use leanfarm_store::{OwedArtifacts, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a replica sweeps the outbox after its first sweep at start.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Jobs settled per page of a sweep.
const SWEEP_PAGE: usize = 200;

/// Why a job's artifacts could not be settled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboxError {
    #[error("cannot encode artifact {name} of job {job_id}: {source}")]
    Encode {
        job_id: String,
        name: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write artifact {name} of job {job_id}: {source}")]
    Write {
        job_id: String,
        name: &'static str,
        #[source]
        source: ArtifactError,
    },
    #[error("job {0} owes artifacts but has no verdict")]
    NoVerdict(String),
    #[error("job {job_id} owes an artifact this server cannot write: {name}")]
    UnknownArtifact { job_id: String, name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Write a stored verdict's artifacts (all of `VERDICT_ARTIFACTS`), then
/// clear its outbox record.
pub(crate) async fn write_artifacts(
    state: &AppState,
    job_id: &str,
    request: &CheckRequest,
    verdict: &Verdict,
) -> Result<(), OutboxError> {
    write_named_artifacts(state, job_id, request, verdict, &VERDICT_ARTIFACTS).await
}

/// Write the named artifacts of a job, then clear its outbox record (only
/// once every one is written).
async fn write_named_artifacts(
    state: &AppState,
    job_id: &str,
    request: &CheckRequest,
    verdict: &Verdict,
    names: &[&str],
) -> Result<(), OutboxError> {
    for name in names {
        let (name, bytes) = match *name {
            "input.json" => ("input.json", serde_json::to_vec_pretty(request)),
            "summary.json" => ("summary.json", serde_json::to_vec_pretty(verdict)),
            "messages.json" => (
                "messages.json",
                serde_json::to_vec_pretty(&verdict.messages),
            ),
            unknown => {
                return Err(OutboxError::UnknownArtifact {
                    job_id: job_id.to_string(),
                    name: unknown.to_string(),
                })
            }
        };
        let bytes = bytes.map_err(|source| OutboxError::Encode {
            job_id: job_id.to_string(),
            name,
            source,
        })?;
        state
            .artifacts
            .put(job_id, name, bytes.into())
            .await
            .map_err(|source| OutboxError::Write {
                job_id: job_id.to_string(),
                name,
                source,
            })?;
    }
    state.store.artifacts_written(job_id).await?;
    Ok(())
}

/// Settle one job of the outbox: write the artifacts it owes.
async fn settle(state: &AppState, owed: &OwedArtifacts) -> Result<(), OutboxError> {
    let verdict = owed
        .job
        .result
        .as_ref()
        .ok_or_else(|| OutboxError::NoVerdict(owed.job.id.clone()))?;
    let names: Vec<&str> = owed.names.iter().map(String::as_str).collect();
    write_named_artifacts(state, &owed.job.id, &owed.job.request, verdict, &names).await
}

/// Settle `job_id` if it owes artifacts (a completion retried after its
/// answer was lost finds the verdict stored and settles it here).
pub(crate) async fn settle_job(state: &AppState, job_id: &str) -> Result<bool, OutboxError> {
    let owing = state.store.jobs_owing_artifacts(Some(job_id), 1).await?;
    for owed in &owing {
        settle(state, owed).await?;
    }
    Ok(!owing.is_empty())
}

/// Settle every job of the outbox; returns how many were settled. A job
/// that fails is logged and left marked for the next sweep.
pub(crate) async fn sweep(state: &AppState) -> Result<usize, StoreError> {
    let mut settled = 0;
    loop {
        let owing = state.store.jobs_owing_artifacts(None, SWEEP_PAGE).await?;
        let mut progressed = false;
        for owed in &owing {
            match settle(state, owed).await {
                Ok(()) => {
                    settled += 1;
                    progressed = true;
                }
                Err(error) => {
                    tracing::warn!(job_id = %owed.job.id, %error, "settling a job's artifacts failed; the next sweep tries again")
                }
            }
        }
        if owing.len() < SWEEP_PAGE || !progressed {
            return Ok(settled);
        }
    }
}

/// Sweep at once, then every `SWEEP_INTERVAL`, until `shutdown` turns true.
pub(crate) async fn sweep_until_shutdown(
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if state.shutting_down.load(Ordering::Relaxed) || *shutdown.borrow() {
            return;
        }
        match sweep(&state).await {
            Ok(0) => {}
            Ok(settled) => {
                tracing::info!(settled, "wrote the artifacts the outbox owed")
            }
            Err(error) => {
                tracing::warn!(%error, "sweeping the artifacts outbox failed; trying again later")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
}
