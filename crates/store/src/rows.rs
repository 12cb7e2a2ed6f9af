//! What both backends share: names of states and scopes as stored, and the
//! decoding of a job row.

use crate::{JobRecord, JobState, KeyScope, StoreError, UnixMillis};
use leanfarm_core::{CheckRequest, Verdict};

/// Columns of a job row, in the order `RawJob` holds them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, batch_id, state, request, header_key, result, attempts, max_attempts, last_error, created_at, started_at, finished_at, toolchain, project";

/// The time now as the store keeps it: Unix time in milliseconds.
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Dead => "dead",
    }
}

pub(crate) fn parse_state(text: &str) -> Result<JobState, StoreError> {
    match text {
        "queued" => Ok(JobState::Queued),
        "running" => Ok(JobState::Running),
        "done" => Ok(JobState::Done),
        "dead" => Ok(JobState::Dead),
        other => Err(StoreError::Corrupt(format!("unknown job state `{other}`"))),
    }
}

pub(crate) fn scope_name(scope: KeyScope) -> &'static str {
    match scope {
        KeyScope::User => "user",
        KeyScope::Worker => "worker",
        KeyScope::Admin => "admin",
    }
}

pub(crate) fn parse_scope(text: &str) -> Result<KeyScope, StoreError> {
    match text {
        "user" => Ok(KeyScope::User),
        "worker" => Ok(KeyScope::Worker),
        "admin" => Ok(KeyScope::Admin),
        other => Err(StoreError::Corrupt(format!("unknown key scope `{other}`"))),
    }
}

pub(crate) type RawJob = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    u32,
    u32,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub(crate) fn to_record(raw: RawJob) -> Result<JobRecord, StoreError> {
    let (
        id,
        tenant,
        batch_id,
        state,
        request,
        header_key,
        result,
        attempts,
        max_attempts,
        last_error,
        created_at,
        started_at,
        finished_at,
        toolchain,
        project,
    ) = raw;
    let request: CheckRequest = serde_json::from_str(&request)
        .map_err(|e| StoreError::Corrupt(format!("job {id} request: {e}")))?;
    let result: Option<Verdict> = match result {
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("job {id} result: {e}")))?,
        ),
        None => None,
    };
    Ok(JobRecord {
        state: parse_state(&state)?,
        id,
        tenant,
        batch_id,
        request,
        header_key,
        toolchain,
        project,
        result,
        attempts,
        max_attempts,
        last_error,
        created_at,
        started_at,
        finished_at,
    })
}
