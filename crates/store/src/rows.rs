//! What both backends share: names of states and scopes as stored, the
//! JSON text of requests and verdicts, and the decoding of rows.

use crate::{
    JobRecord, JobState, KeyOwner, KeyRecord, KeyScope, NewJob, QueueCounts, StoreError, UnixMillis,
};
use leanfarm_core::{CheckRequest, Verdict};

/// Columns of a job row, in the order `RawJob` holds them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, batch_id, state, request, header_key, result, attempts, max_attempts, last_error, created_at, started_at, finished_at, toolchain, project, attestation";

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
        KeyScope::Operator => "operator",
    }
}

pub(crate) fn parse_scope(text: &str) -> Result<KeyScope, StoreError> {
    match text {
        "user" => Ok(KeyScope::User),
        "worker" => Ok(KeyScope::Worker),
        "operator" => Ok(KeyScope::Operator),
        other => Err(StoreError::Corrupt(format!("unknown key scope `{other}`"))),
    }
}

/// Columns of a key row, in the order `RawKey` holds them.
pub(crate) const KEY_COLUMNS: &str = "key_id, tenant, scope, revoked, created_at, expires_at";

/// A key row: key id, tenant (`None`: the farm's), scope, revoked, created, expiry.
pub(crate) type RawKey = (String, Option<String>, String, bool, i64, Option<i64>);

pub(crate) fn to_key_record(raw: RawKey) -> Result<KeyRecord, StoreError> {
    let (key_id, tenant, scope, revoked, created_at, expires_at) = raw;
    Ok(KeyRecord {
        key_id,
        owner: tenant.map_or(KeyOwner::Farm, KeyOwner::Tenant),
        scope: parse_scope(&scope)?,
        revoked,
        created_at,
        expires_at,
    })
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
        attestation,
    ) = raw;
    let request = parse_request(&id, &request)?;
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
        attestation,
        attempts,
        max_attempts,
        last_error,
        created_at,
        started_at,
        finished_at,
    })
}

/// A stored job's request, read back.
pub(crate) fn parse_request(job_id: &str, text: &str) -> Result<CheckRequest, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("job {job_id} request: {e}")))
}

/// Each job with its request as the store keeps it (JSON text).
pub(crate) fn encode_requests(jobs: Vec<NewJob>) -> Result<Vec<(NewJob, String)>, StoreError> {
    jobs.into_iter()
        .map(|job| {
            let request = serde_json::to_string(&job.request)
                .map_err(|e| StoreError::Query(e.to_string()))?;
            Ok((job, request))
        })
        .collect()
}

/// A verdict as the store keeps it (JSON text).
pub(crate) fn encode_verdict(verdict: &Verdict) -> Result<String, StoreError> {
    serde_json::to_string(verdict).map_err(|e| StoreError::Query(e.to_string()))
}

/// The queue's counts from `(state, count)` rows.
pub(crate) fn queue_counts<'a>(
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<QueueCounts, StoreError> {
    let mut counts = QueueCounts::default();
    for (state, count) in rows {
        match parse_state(state)? {
            JobState::Queued => counts.queued = count,
            JobState::Running => counts.running = count,
            JobState::Done => counts.done = count,
            JobState::Dead => counts.dead = count,
        }
    }
    Ok(counts)
}
