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
//!
//! Replies are typed (`CheckReply`, `VerifyReply`, `ReplResponse`), with
//! `lean_protocol`'s `Pos` and `Sorry` for the REPL-shaped parts. Their JSON
//! has the keys, values and nesting the earlier `json!` builder sent (the
//! tests hold that builder as the reference); only key order inside an
//! object may differ, and one key Kimina does not send: `attestation`, Lean
//! Farm's signed attestation of the verdict, present only when the verdict
//! was signed (`kimina-client` parses replies with pydantic models that
//! ignore unknown keys; its test runs against a signing farm). This module
//! must never change a reply's shape otherwise: Kimina's client parses it.

use crate::body::parse_body;
use crate::error::ApiError;
use crate::input_limits;
use crate::submit::{is_final, submit_and_wait, Target};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use lean_protocol::{Pos, Severity, Sorry};
use leanfarm_attest::Attestation;
use leanfarm_core::{CheckRequest, CheckStatus, Policy, Verdict, VerdictMessage};
use leanfarm_store::{JobRecord, JobState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// The answer of `POST /api/check`.
#[derive(Serialize)]
pub(crate) struct CheckReply {
    results: Vec<CheckResult>,
}

/// One snippet's result in `CheckReply`: every key is always present.
#[derive(Serialize)]
struct CheckResult {
    error: Option<String>,
    id: String,
    response: Option<ReplResponse>,
    time: f64,
    /// Lean Farm's signed attestation of the verdict, when it was signed;
    /// absent otherwise. Kimina's client ignores keys it does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<Attestation>,
}

/// The answer of `POST /verify`.
#[derive(Serialize)]
pub(crate) struct VerifyReply {
    results: Vec<VerifyResult>,
}

/// One code's result in `VerifyReply`: `error` and `response` only when set.
#[derive(Serialize)]
struct VerifyResult {
    /// Echoed as sent (a string or any other JSON value).
    custom_id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<TimedResponse>,
    /// As in `CheckResult`.
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<Attestation>,
}

/// `/verify` carries the time inside the response.
#[derive(Serialize)]
struct TimedResponse {
    #[serde(flatten)]
    response: ReplResponse,
    time: f64,
}

/// What Kimina's REPL would have answered.
#[derive(Serialize)]
#[serde(untagged)]
enum ReplResponse {
    /// A command response: the verdict's messages and sorries.
    Command(CommandResponse),
    /// The REPL itself failed (Kimina's client reads `repl_error`).
    Failure { message: String },
}

/// A REPL command response.
#[derive(Serialize)]
struct CommandResponse {
    env: u64,
    messages: Vec<ReplMessage>,
    /// Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sorries: Vec<Sorry>,
}

/// A message as the REPL prints it, but with `endPos` always present
/// (`null` when unknown), as this endpoint has always sent it. The severity
/// is the verdict's own text, passed through unchanged.
#[derive(Serialize)]
struct ReplMessage {
    data: String,
    #[serde(rename = "endPos")]
    end_pos: Option<Pos>,
    pos: Pos,
    severity: String,
}

impl ReplMessage {
    fn from_verdict(message: &VerdictMessage) -> ReplMessage {
        let end_pos = match (message.end_line, message.end_column) {
            (Some(line), Some(column)) => Some(Pos { line, column }),
            _ => None,
        };
        ReplMessage {
            data: message.data.clone(),
            end_pos,
            pos: Pos {
                line: message.line,
                column: message.column,
            },
            severity: message.severity.as_str().to_string(),
        }
    }
}

/// A sorry at one position, with the goal it leaves open.
fn sorry_at(line: u32, column: u32, goal: String) -> Sorry {
    Sorry {
        pos: Some(Pos { line, column }),
        end_pos: Some(Pos { line, column }),
        goal,
        proof_state: None,
        extra: Default::default(),
    }
}

/// The farm's health, as Kimina reports it.
#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
}

pub(crate) async fn api_check(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CheckReply>, ApiError> {
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
    let results = records
        .iter()
        .zip(ids)
        .map(|(record, id)| {
            let (time, error, response) = translate(record, body.timeout);
            CheckResult {
                error,
                id,
                response,
                time,
                attestation: attestation_of(record),
            }
        })
        .collect();
    Ok(Json(CheckReply { results }))
}

pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VerifyReply>, ApiError> {
    let tenant = crate::auth::user_tenant(&state, &headers).await?;
    let body: VerifyBody = parse_body(&state, &body)?;
    let mut custom_ids = Vec::new();
    let mut requests = Vec::new();
    for (index, code) in body.codes.into_iter().enumerate() {
        // A custom id is echoed back: it is capped like any snippet id.
        input_limits::string(
            &format!("codes[{index}].custom_id"),
            &code.custom_id.to_string(),
            input_limits::MAX_CUSTOM_ID_BYTES,
        )?;
        let text = code.proof.or(code.code).ok_or_else(|| {
            ApiError::InvalidRequest(format!("codes[{index}] has no proof or code"))
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
    let results = records
        .iter()
        .zip(custom_ids)
        .map(|(record, custom_id)| {
            let (time, error, response) = translate(record, body.timeout);
            VerifyResult {
                custom_id,
                error,
                response: response.map(|response| TimedResponse { response, time }),
                attestation: attestation_of(record),
            }
        })
        .collect();
    Ok(Json(VerifyReply { results }))
}

/// The stored attestation of a job's verdict, as the API shows it.
fn attestation_of(record: &JobRecord) -> Option<Attestation> {
    record
        .attestation
        .as_deref()
        .and_then(|text| Attestation::from_json(text).ok())
}

pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
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
        // Kimina's server judges a snippet without a theorem by Lean alone.
        policy: Policy {
            require_theorem: false,
            ..Policy::default()
        },
        infotree,
        trace_context: None,
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
    let (_batch, records) =
        submit_and_wait(state, tenant, &Target::default(), requests, wait, None).await?;
    Ok(records)
}

/// Kimina's `(time, error, response)` for one job.
fn translate(record: &JobRecord, timeout: f64) -> (f64, Option<String>, Option<ReplResponse>) {
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
        .reason()
        .map(|r| r.message.clone())
        .unwrap_or_default();
    match verdict.status() {
        CheckStatus::TimeoutError => (
            time,
            Some(format!("Lean Farm: the check timed out: {reason}")),
            None,
        ),
        CheckStatus::ServerError => (time, Some(format!("Lean Farm: {reason}")), None),
        CheckStatus::ReplError => (
            time,
            None,
            Some(ReplResponse::Failure {
                message: format!("Lean Farm: {reason}"),
            }),
        ),
        CheckStatus::Valid | CheckStatus::Sorry | CheckStatus::LeanError => (
            time,
            None,
            Some(ReplResponse::Command(command_response(verdict))),
        ),
    }
}

/// A REPL-style command response carrying the verdict.
fn command_response(verdict: &Verdict) -> CommandResponse {
    let mut messages: Vec<ReplMessage> = verdict
        .messages
        .iter()
        .map(ReplMessage::from_verdict)
        .collect();
    let mut sorries: Vec<Sorry> = verdict
        .sorries
        .iter()
        .map(|sorry| sorry_at(sorry.line, sorry.column, sorry.goal.clone()))
        .collect();
    let error = Severity::Error.as_str();
    let has_error = verdict
        .messages
        .iter()
        .any(|message| message.severity == leanfarm_core::Severity::Error);
    match verdict.status() {
        CheckStatus::LeanError if !has_error => {
            // A policy rule, not Lean, rejected the snippet: say so as an error.
            let reason = verdict
                .reason()
                .map(|r| format!("Lean Farm: {} ({})", r.message, r.code))
                .unwrap_or_default();
            messages.push(ReplMessage {
                data: reason,
                end_pos: None,
                pos: Pos { line: 1, column: 0 },
                severity: error.to_string(),
            });
        }
        CheckStatus::Sorry if sorries.is_empty() => {
            // `sorryAx` reached without a `sorry` token: the proof still uses sorry.
            sorries.push(sorry_at(1, 0, "(sorryAx is among the axioms)".to_string()));
        }
        _ => {}
    }
    CommandResponse {
        env: 0,
        messages,
        sorries,
    }
}

#[cfg(test)]
mod tests {
    //! The typed replies against the `json!` builder this module used
    //! before them (kept here, verbatim, as the reference): for every kind
    //! of verdict, both endpoints send the same JSON.

    use super::*;
    use leanfarm_core::ReasonCode;
    use leanfarm_core::{VerdictReason, VerdictSorry};
    use serde_json::json;

    /// Kimina's `(time, error, response)` for one job.
    fn old_translate(record: &JobRecord, timeout: f64) -> (f64, Option<String>, Option<Value>) {
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
            .reason()
            .map(|r| r.message.clone())
            .unwrap_or_default();
        match verdict.status() {
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
                (time, None, Some(old_command_response(verdict)))
            }
        }
    }

    /// A REPL-style command response carrying the verdict.
    fn old_command_response(verdict: &Verdict) -> Value {
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
            .any(|message| message.severity == leanfarm_core::Severity::Error);
        match verdict.status() {
            CheckStatus::LeanError if !has_error => {
                // A policy rule, not Lean, rejected the snippet: say so as an error.
                let reason = verdict
                    .reason()
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

    fn record(state: JobState, result: Option<Verdict>) -> JobRecord {
        JobRecord {
            id: "job".into(),
            tenant: "default".into(),
            batch_id: None,
            state,
            request: request(Some("a".into()), "example".into(), 30.0, None),
            header_key: String::new(),
            toolchain: None,
            project: None,
            result,
            attestation: None,
            attempts: 3,
            max_attempts: 3,
            last_error: Some("the sandbox could not start".into()),
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    fn verdict(
        status: CheckStatus,
        messages: Vec<VerdictMessage>,
        sorries: Vec<VerdictSorry>,
    ) -> Verdict {
        let code = match status {
            CheckStatus::Valid => None,
            CheckStatus::Sorry => Some(ReasonCode::UsesSorry),
            CheckStatus::LeanError => Some(ReasonCode::ForbiddenAxiom),
            CheckStatus::ReplError => Some(ReasonCode::ReplCrashed),
            CheckStatus::TimeoutError => Some(ReasonCode::Timeout),
            CheckStatus::ServerError => unreachable!("no reason code means server_error"),
        };
        let mut verdict = match code {
            None => Verdict::valid(),
            Some(code) => Verdict::rejected(VerdictReason::new(code, "what happened")),
        };
        verdict.messages = messages;
        verdict.sorries = sorries;
        verdict.timings.body_ms = 1234.0;
        verdict
    }

    fn message(severity: &str, end: Option<(u32, u32)>, data: &str) -> VerdictMessage {
        VerdictMessage {
            severity: serde_json::from_value(json!(severity)).unwrap(),
            line: 3,
            column: 4,
            end_line: end.map(|(line, _)| line),
            end_column: end.map(|(_, column)| column),
            data: data.into(),
        }
    }

    fn every_kind_of_record() -> Vec<JobRecord> {
        let error = message("error", Some((3, 9)), "unknown identifier 'x'");
        let warning = message("warning", None, "declaration uses 'sorry'");
        let info = message("info", Some((5, 0)), "an info message passes through");
        let sorry = VerdictSorry {
            line: 7,
            column: 2,
            goal: "⊢ True".into(),
        };
        vec![
            record(JobState::Queued, None),
            record(JobState::Running, None),
            record(JobState::Dead, None),
            record(
                JobState::Done,
                Some(verdict(CheckStatus::TimeoutError, vec![], vec![])),
            ),
            record(
                JobState::Done,
                Some(verdict(CheckStatus::ReplError, vec![], vec![])),
            ),
            record(
                JobState::Done,
                Some(verdict(CheckStatus::Valid, vec![], vec![])),
            ),
            record(
                JobState::Done,
                Some(verdict(CheckStatus::Valid, vec![info.clone()], vec![])),
            ),
            record(
                JobState::Done,
                Some(verdict(
                    CheckStatus::LeanError,
                    vec![error.clone(), warning.clone()],
                    vec![],
                )),
            ),
            record(
                JobState::Done,
                Some(verdict(
                    CheckStatus::LeanError,
                    vec![warning.clone()],
                    vec![],
                )),
            ),
            record(
                JobState::Done,
                Some(verdict(
                    CheckStatus::Sorry,
                    vec![warning.clone()],
                    vec![sorry.clone()],
                )),
            ),
            record(
                JobState::Done,
                Some(verdict(CheckStatus::Sorry, vec![], vec![])),
            ),
        ]
    }

    #[test]
    fn api_check_results_are_the_json_they_always_were() {
        for record in every_kind_of_record() {
            let (time, error, response) = translate(&record, 30.0);
            let typed = serde_json::to_value(CheckResult {
                error,
                id: "a".into(),
                response,
                time,
                attestation: attestation_of(&record),
            })
            .unwrap();
            let (time, error, response) = old_translate(&record, 30.0);
            let reference =
                json!({ "id": "a", "time": time, "error": error, "response": response });
            assert_eq!(
                typed,
                reference,
                "for {:?}",
                record.result.as_ref().map(|v| v.status())
            );
        }
    }

    #[test]
    fn verify_results_are_the_json_they_always_were() {
        for custom_id in [json!("proof-1"), json!(17)] {
            for record in every_kind_of_record() {
                let (time, error, response) = translate(&record, 30.0);
                let typed = serde_json::to_value(VerifyResult {
                    custom_id: custom_id.clone(),
                    error,
                    response: response.map(|response| TimedResponse { response, time }),
                    attestation: attestation_of(&record),
                })
                .unwrap();
                let (time, error, response) = old_translate(&record, 30.0);
                let mut reference = json!({ "custom_id": custom_id });
                if let Some(error) = error {
                    reference["error"] = Value::String(error);
                }
                if let Some(mut response) = response {
                    response["time"] = json!(time);
                    reference["response"] = response;
                }
                assert_eq!(
                    typed,
                    reference,
                    "for {:?}",
                    record.result.as_ref().map(|v| v.status())
                );
            }
        }
    }

    #[test]
    fn health_is_status_ok() {
        assert_eq!(
            serde_json::to_value(Health { status: "ok" }).unwrap(),
            json!({ "status": "ok" })
        );
    }
}
