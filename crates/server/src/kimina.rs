//! Kimina Lean Server compatibility: `POST /api/check`, `POST /verify` and
//! `GET /health`, with the request and response shapes of that server, so
//! its `kimina-client` works unchanged.
//!
//! Kimina's client derives a status from each response: an error message
//! means `lean_error`, a non-empty `sorries` means `sorry`, `{"message"}`
//! means `repl_error`, an `error` containing "timed out" means
//! `timeout_error`, any other `error` means `server_error`. A Lean Farm
//! verdict is translated so that the client derives the same status: a
//! policy rejection becomes an error message naming the rule.

use crate::api::{is_final, parse_body, submit_and_wait};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use leanfarm_core::{CheckRequest, CheckStatus, Policy, Verdict};
use leanfarm_store::{JobRecord, JobState};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Extra time a Kimina request waits beyond its snippets' timeout, for queueing.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(120);

#[derive(Deserialize)]
struct CheckBody {
    snippets: Vec<KiminaSnippet>,
    #[serde(default = "default_timeout")]
    timeout: f64,
    #[serde(default)]
    infotree: Option<String>,
    // Accepted for compatibility; the farm always reuses warm REPLs and
    // never returns per-REPL diagnostics.
    #[serde(default)]
    #[allow(dead_code)]
    debug: bool,
    #[serde(default)]
    #[allow(dead_code)]
    reuse: Option<bool>,
}

fn default_timeout() -> f64 {
    30.0
}

#[derive(Deserialize)]
struct KiminaSnippet {
    id: String,
    code: String,
}

#[derive(Deserialize)]
struct VerifyBody {
    codes: Vec<VerifyCode>,
    #[serde(default = "default_verify_timeout")]
    timeout: f64,
    #[serde(default)]
    infotree_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    disable_cache: bool,
}

fn default_verify_timeout() -> f64 {
    300.0
}

#[derive(Deserialize)]
struct VerifyCode {
    custom_id: Value,
    #[serde(default)]
    proof: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

pub(crate) async fn api_check(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = crate::auth::user_tenant(&state, &headers).await?;
    let body: CheckBody = parse_body(&state, &body)?;
    let ids: Vec<String> = body
        .snippets
        .iter()
        .map(|snippet| snippet.id.clone())
        .collect();
    let requests = body
        .snippets
        .into_iter()
        .map(|snippet| {
            request(
                Some(snippet.id),
                snippet.code,
                body.timeout,
                body.infotree.clone(),
            )
        })
        .collect();
    let records = run(&state, &tenant, requests, body.timeout).await?;
    let results: Vec<Value> = records
        .iter()
        .zip(ids)
        .map(|(record, id)| {
            let (time, error, response) = translate(record, body.timeout);
            json!({ "id": id, "time": time, "error": error, "response": response })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = crate::auth::user_tenant(&state, &headers).await?;
    let body: VerifyBody = parse_body(&state, &body)?;
    let mut custom_ids = Vec::new();
    let mut requests = Vec::new();
    for code in body.codes {
        let text = code.proof.or(code.code).ok_or_else(|| {
            ApiError::InvalidRequest(format!("snippet {} has no proof or code", code.custom_id))
        })?;
        let custom_id = match &code.custom_id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        requests.push(request(
            Some(custom_id),
            text,
            body.timeout,
            body.infotree_type.clone(),
        ));
        custom_ids.push(code.custom_id);
    }
    let records = run(&state, &tenant, requests, body.timeout).await?;
    let results: Vec<Value> = records
        .iter()
        .zip(custom_ids)
        .map(|(record, custom_id)| {
            let (time, error, response) = translate(record, body.timeout);
            let mut result = json!({ "custom_id": custom_id });
            if let Some(error) = error {
                result["error"] = Value::String(error);
            }
            if let Some(mut response) = response {
                response["time"] = json!(time);
                result["response"] = response;
            }
            result
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn request(
    custom_id: Option<String>,
    code: String,
    timeout: f64,
    infotree: Option<String>,
) -> CheckRequest {
    CheckRequest {
        custom_id,
        code,
        timeout_seconds: timeout,
        policy: Policy::default(),
        infotree,
    }
}

async fn run(
    state: &AppState,
    tenant: &str,
    requests: Vec<CheckRequest>,
    timeout: f64,
) -> Result<Vec<JobRecord>, ApiError> {
    let wait = Duration::from_secs_f64(timeout.clamp(0.0, state.limits.max_timeout_seconds))
        + QUEUE_ALLOWANCE;
    let (_batch, records) = submit_and_wait(
        state,
        tenant,
        &crate::api::Target::default(),
        requests,
        wait,
    )
    .await?;
    Ok(records)
}

/// Kimina's `(time, error, response)` for one job.
fn translate(record: &JobRecord, timeout: f64) -> (f64, Option<String>, Option<Value>) {
    if !is_final(record.state) {
        return (
            0.0,
            Some(format!(
                "Lean Farm: the check timed out waiting in the queue (timeout {timeout} s)"
            )),
            None,
        );
    }
    let Some(verdict) = &record.result else {
        let why = record.last_error.as_deref().unwrap_or("unknown error");
        debug_assert_eq!(record.state, JobState::Dead);
        return (
            0.0,
            Some(format!(
                "Lean Farm: the farm gave up after {} attempts: {why}",
                record.attempts
            )),
            None,
        );
    };
    let time = verdict.timings.body_ms / 1000.0;
    let reason = verdict
        .reason
        .as_ref()
        .map(|r| r.message.clone())
        .unwrap_or_default();
    match verdict.status {
        CheckStatus::TimeoutError => (
            time,
            Some(format!("Lean Farm: the check timed out: {reason}")),
            None,
        ),
        CheckStatus::ServerError => (time, Some(format!("Lean Farm: {reason}")), None),
        CheckStatus::ReplError => (
            time,
            None,
            Some(json!({ "message": format!("Lean Farm: {reason}") })),
        ),
        CheckStatus::Valid | CheckStatus::Sorry | CheckStatus::LeanError => {
            (time, None, Some(command_response(verdict)))
        }
    }
}

/// A REPL-style command response carrying the verdict.
fn command_response(verdict: &Verdict) -> Value {
    let position = |line: u32, column: u32| json!({ "line": line, "column": column });
    let mut messages: Vec<Value> = verdict
        .messages
        .iter()
        .map(|message| {
            let end = match (message.end_line, message.end_column) {
                (Some(line), Some(column)) => position(line, column),
                _ => Value::Null,
            };
            json!({ "severity": message.severity, "pos": position(message.line, message.column), "endPos": end, "data": message.data })
        })
        .collect();
    let mut sorries: Vec<Value> = verdict
        .sorries
        .iter()
        .map(|sorry| json!({ "pos": position(sorry.line, sorry.column), "endPos": position(sorry.line, sorry.column), "goal": sorry.goal }))
        .collect();
    let has_error = verdict
        .messages
        .iter()
        .any(|message| message.severity == "error");
    match verdict.status {
        CheckStatus::LeanError if !has_error => {
            // A policy rule, not Lean, rejected the snippet: say so as an error.
            let reason = verdict
                .reason
                .as_ref()
                .map(|r| format!("Lean Farm: {} ({})", r.message, r.code))
                .unwrap_or_default();
            messages.push(json!({ "severity": "error", "pos": position(1, 0), "endPos": Value::Null, "data": reason }));
        }
        CheckStatus::Sorry if sorries.is_empty() => {
            // `sorryAx` reached without a `sorry` token: the proof still uses sorry.
            sorries.push(json!({ "pos": position(1, 0), "endPos": position(1, 0), "goal": "(sorryAx is among the axioms)" }));
        }
        _ => {}
    }
    let mut response = json!({ "env": 0, "messages": messages });
    if !sorries.is_empty() {
        response["sorries"] = Value::Array(sorries);
    }
    response
}
