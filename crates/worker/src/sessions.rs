//! The session host: the part of a worker that holds tactic sessions.
//!
//! A host polls its `SessionOps` for the operations addressed to it (and
//! for `open`s no host took yet, while it has room), runs each on the
//! session's REPL through the driver, and reports the reply. Every poll
//! marks its sessions seen; the farm declares the sessions of a host that
//! stopped polling lost. A session the farm ended (deleted, idle, lost) is
//! no longer in `live`, and the host stops its REPL.
//!
//! The wire shapes of the operations (`OpenRequest`, `OpenReply`,
//! `TacticsRequest`, `TacticsReply`) are shared with the server.

use crate::QueueError;
use leanfarm_core::{PinnedStatement, Policy, VerdictMessage, VerdictReason};
use leanfarm_driver::{Driver, Opening, Session, SessionError, TacticOutcome};
use leanfarm_store::{SessionOpDone, SessionOpRow, SessionStateRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The `open` operation: a header and either a theorem or a body whose
/// `sorry`s open the proof states.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenRequest {
    #[serde(default)]
    pub header: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theorem: Option<PinnedStatement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    pub policy: Policy,
    /// REPLs the session holds (its tactics run in parallel across them).
    pub repls: usize,
    pub tactic_timeout_seconds: f64,
    pub open_timeout_seconds: f64,
}

/// One proof state and its goals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateView {
    pub proof_state: u64,
    pub goals: Vec<String>,
}

/// The reply to `open`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenReply {
    pub states: Vec<StateView>,
    pub messages: Vec<VerdictMessage>,
    /// Why the session did not open (`code: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Set when the host had no room (the farm's session REPLs are all taken).
    #[serde(default)]
    pub busy: bool,
}

/// One `(proof_state, tactic)` pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TacticPair {
    pub proof_state: u64,
    pub tactic: String,
}

/// The `tactics` operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TacticsRequest {
    pub pairs: Vec<TacticPair>,
}

/// What one pair gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TacticResult {
    /// A new proof state with goals left.
    Goals {
        proof_state: u64,
        goals: Vec<String>,
    },
    /// A new proof state with no goal left.
    Proved { proof_state: u64 },
    /// Lean refused the tactic (or left no goal to work on); no state made.
    Error {
        message: String,
        messages: Vec<VerdictMessage>,
    },
    /// The farm's screen refused the tactic before Lean saw it.
    Refused { code: String, message: String },
    /// The REPL that held the state failed (timeout, memory, crash) and was
    /// stopped; the session goes on in its other REPLs, if any.
    ReplLost { message: String },
    /// The state was held only by a REPL that is gone.
    StateLost { message: String },
    /// The session is gone.
    Lost { message: String },
}

/// The reply to `tactics`: one result per pair, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TacticsReply {
    pub results: Vec<TacticResult>,
    /// Set when the session was lost while the operation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

/// The `assemble` operation: a chain of states, from a root to a proved one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssembleRequest {
    pub chain: Vec<u64>,
}

/// The reply to `assemble`: the proof's text, or why there is none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssembleReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/worker/sessions/poll`: take the operations addressed to
/// `host` (waiting up to `wait_seconds` for one).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    pub host: String,
    pub open_capacity: usize,
    pub wait_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PollResponse {
    pub ops: Vec<SessionOpRow>,
}

/// `POST /v1/worker/sessions/complete`'s answer: whether the reply was
/// stored (false: the operation is not this host's, or already answered).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompleteResponse {
    pub stored: bool,
}

/// `POST /v1/worker/sessions/live`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    pub host: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveResponse {
    pub sessions: Vec<String>,
}

/// How long a remote host's poll waits for an operation, in seconds: well
/// under the farm's host silence, so a waiting host is never taken for gone.
pub const POLL_WAIT_SECONDS: f64 = 2.0;

/// Where a host gets its operations and reports their replies.
pub trait SessionOps: Send + Sync + 'static {
    /// Take the operations addressed to `host` and up to `open_capacity`
    /// unowned `open`s, marking the host's sessions seen. May wait a little
    /// for work; an empty list means none came.
    fn take(
        &self,
        host: &str,
        open_capacity: usize,
    ) -> impl Future<Output = Result<Vec<SessionOpRow>, QueueError>> + Send;

    /// Report an operation's reply.
    fn complete(&self, done: SessionOpDone) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The ids of the host's live sessions.
    fn live(&self, host: &str) -> impl Future<Output = Result<Vec<String>, QueueError>> + Send;
}

/// Settings of a session host.
#[derive(Clone, Debug)]
pub struct SessionHostConfig {
    /// The host's name: every operation of its sessions is addressed to it.
    pub host: String,
    /// Sessions (each with its REPL) the host holds at once.
    pub max_sessions: usize,
    /// How often the host compares its sessions with the live ones.
    pub sweep_interval: Duration,
}

type Sessions = Arc<Mutex<HashMap<String, Session>>>;

/// Host sessions until `stop` turns true; then every REPL is stopped.
pub async fn host_sessions(
    ops: impl SessionOps,
    driver: Driver,
    config: SessionHostConfig,
    mut stop: watch::Receiver<bool>,
) {
    let ops = Arc::new(ops);
    let sessions: Sessions = Arc::default();
    let opening = Arc::new(AtomicUsize::new(0));
    let mut last_sweep = Instant::now();
    while !*stop.borrow() {
        if last_sweep.elapsed() >= config.sweep_interval {
            last_sweep = Instant::now();
            match ops.live(&config.host).await {
                Ok(live) => close_ended(&sessions, &live).await,
                Err(error) => tracing::warn!(%error, "cannot list the host's live sessions"),
            }
        }
        // Sessions still opening count as held: a poll must not take more
        // opens than the host has room for.
        let held = sessions.lock().expect("sessions lock").len() + opening.load(Ordering::Acquire);
        let room = config.max_sessions.saturating_sub(held);
        let taken = tokio::select! {
            taken = ops.take(&config.host, room) => taken,
            _ = stop.changed() => break,
        };
        let taken = match taken {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(%error, "cannot take session operations");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for op in taken {
            let (ops, driver, sessions, host, opening) = (
                Arc::clone(&ops),
                driver.clone(),
                Arc::clone(&sessions),
                config.host.clone(),
                Arc::clone(&opening),
            );
            let is_open = op.kind == "open";
            if is_open {
                opening.fetch_add(1, Ordering::AcqRel);
            }
            tokio::spawn(async move {
                let done = run_op(&driver, &sessions, &host, &op).await;
                if is_open {
                    opening.fetch_sub(1, Ordering::AcqRel);
                }
                // A reply that cannot be reported leaves the API to time the
                // operation out and lose the session: retried a few times.
                for attempt in 1..=5u64 {
                    match ops.complete(done.clone()).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, attempt, "cannot report a session operation");
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                    }
                }
            });
        }
    }
    let held: Vec<Session> = sessions
        .lock()
        .expect("sessions lock")
        .drain()
        .map(|(_, session)| session)
        .collect();
    for session in held {
        session.close().await;
    }
}

/// Stop the REPLs of sessions that are no longer live.
async fn close_ended(sessions: &Sessions, live: &[String]) {
    let ended: Vec<Session> = {
        let mut sessions = sessions.lock().expect("sessions lock");
        let gone: Vec<String> = sessions
            .keys()
            .filter(|id| !live.contains(id))
            .cloned()
            .collect();
        gone.iter().filter_map(|id| sessions.remove(id)).collect()
    };
    for session in ended {
        session.close().await;
    }
}

async fn run_op(
    driver: &Driver,
    sessions: &Sessions,
    host: &str,
    op: &SessionOpRow,
) -> SessionOpDone {
    let mut done = SessionOpDone {
        op_id: op.id.clone(),
        host: host.to_string(),
        ..Default::default()
    };
    let session = sessions
        .lock()
        .expect("sessions lock")
        .get(&op.session_id)
        .cloned();
    match (op.kind.as_str(), session) {
        ("open", _) => open(driver, sessions, op, &mut done).await,
        ("tactics", Some(session)) => tactics(&session, op, &mut done).await,
        ("assemble", Some(session)) => {
            let reply = match serde_json::from_str::<AssembleRequest>(&op.request) {
                Ok(request) => match session.assemble_proof(&request.chain) {
                    Ok(proof) => AssembleReply {
                        proof: Some(proof),
                        error: None,
                    },
                    Err(error) => AssembleReply {
                        proof: None,
                        error: Some(error.to_string()),
                    },
                },
                Err(error) => AssembleReply {
                    proof: None,
                    error: Some(format!("the request is not understood: {error}")),
                },
            };
            done.reply = serde_json::to_string(&reply).expect("replies serialise");
        }
        (_, _) => {
            // The host does not hold the session (it restarted, or the
            // session's REPLs are gone): the session is lost.
            let message = "the worker no longer holds the session".to_string();
            done.session_state = Some("lost".into());
            done.reason = Some(message.clone());
            done.reply = serde_json::to_string(&TacticsReply {
                results: Vec::new(),
                lost: Some(message),
            })
            .expect("replies serialise");
        }
    }
    done
}

async fn open(driver: &Driver, sessions: &Sessions, op: &SessionOpRow, done: &mut SessionOpDone) {
    let refuse = |done: &mut SessionOpDone, why: String, messages, busy| {
        done.session_state = Some("closed".into());
        done.reason = Some(why.clone());
        done.reply = serde_json::to_string(&OpenReply {
            states: Vec::new(),
            messages,
            refused: Some(why),
            busy,
        })
        .expect("replies serialise");
    };
    let request: OpenRequest = match serde_json::from_str(&op.request) {
        Ok(request) => request,
        Err(error) => {
            return refuse(
                done,
                format!("the open request is not understood: {error}"),
                Vec::new(),
                false,
            )
        }
    };
    let opening = match (request.theorem, request.snippet) {
        (Some(theorem), None) => Opening::Theorem(theorem),
        (None, Some(snippet)) => Opening::Snippet(snippet),
        _ => {
            return refuse(
                done,
                "an open request holds a theorem or a snippet".into(),
                Vec::new(),
                false,
            )
        }
    };
    let seconds = |value: f64| Duration::from_secs_f64(value.clamp(0.001, 86_400.0));
    let opened = driver
        .open_session(leanfarm_driver::OpenRequest {
            header: request.header,
            opening,
            policy: request.policy,
            repls: request.repls,
            tactic_timeout: seconds(request.tactic_timeout_seconds),
            open_timeout: seconds(request.open_timeout_seconds),
        })
        .await;
    match opened {
        Ok(opened) => {
            sessions
                .lock()
                .expect("sessions lock")
                .insert(op.session_id.clone(), opened.session);
            let states: Vec<StateView> = opened
                .states
                .into_iter()
                .map(|state| StateView {
                    proof_state: state.id,
                    goals: state.goals,
                })
                .collect();
            done.states = states
                .iter()
                .map(|state| SessionStateRow {
                    state_id: state.proof_state,
                    parent: None,
                    tactic: None,
                    goals: serde_json::to_string(&state.goals).expect("goals serialise"),
                    proved: state.goals.is_empty(),
                })
                .collect();
            done.session_state = Some("open".into());
            let reply = OpenReply {
                states,
                messages: opened.messages,
                refused: None,
                busy: false,
            };
            done.reply = serde_json::to_string(&reply).expect("replies serialise");
            done.opened = Some(done.reply.clone());
        }
        Err(SessionError::Refused(reason)) => refuse(done, reason_text(&reason), Vec::new(), false),
        Err(SessionError::NoProofState { messages }) => refuse(
            done,
            "the opening made no proof state (no `sorry` was reached, or Lean reported an error)"
                .into(),
            messages,
            false,
        ),
        Err(busy @ SessionError::Busy(_)) => refuse(done, busy.to_string(), Vec::new(), true),
        Err(error) => refuse(done, error.to_string(), Vec::new(), false),
    }
}

fn reason_text(reason: &VerdictReason) -> String {
    format!("{}: {}", reason.code.as_str(), reason.message)
}

async fn tactics(session: &Session, op: &SessionOpRow, done: &mut SessionOpDone) {
    let pairs: Vec<(u64, String)> = match serde_json::from_str::<TacticsRequest>(&op.request) {
        Ok(request) => request
            .pairs
            .into_iter()
            .map(|pair| (pair.proof_state, pair.tactic))
            .collect(),
        Err(_) => Vec::new(),
    };
    let outcomes = session.apply_all(&pairs).await;
    let mut reply = TacticsReply {
        results: Vec::with_capacity(pairs.len()),
        lost: None,
    };
    for ((parent, tactic), outcome) in pairs.iter().zip(outcomes) {
        let state = |proof_state: u64, goals: &[String]| SessionStateRow {
            state_id: proof_state,
            parent: Some(*parent),
            tactic: Some(tactic.clone()),
            goals: serde_json::to_string(goals).expect("goals serialise"),
            proved: goals.is_empty(),
        };
        let result = match outcome {
            Ok(TacticOutcome::Open { state: id, goals }) => {
                done.tactics += 1;
                done.states.push(state(id, &goals));
                TacticResult::Goals {
                    proof_state: id,
                    goals,
                }
            }
            Ok(TacticOutcome::Proved { state: id }) => {
                done.tactics += 1;
                done.states.push(state(id, &[]));
                TacticResult::Proved { proof_state: id }
            }
            Ok(TacticOutcome::Error { messages, status }) => {
                done.tactics += 1;
                let message = messages
                    .iter()
                    .map(|message| message.data.clone())
                    .next()
                    .or(status)
                    .unwrap_or_else(|| "the tactic failed".into());
                TacticResult::Error { message, messages }
            }
            Ok(TacticOutcome::Refused { reason }) => TacticResult::Refused {
                code: reason.code.as_str().to_string(),
                message: reason.message,
            },
            Err(SessionError::ReplLost { reason }) => {
                done.tactics += 1;
                TacticResult::ReplLost {
                    message: reason_text(&reason),
                }
            }
            Err(lost @ SessionError::StateLost(_)) => TacticResult::StateLost {
                message: lost.to_string(),
            },
            Err(other) => TacticResult::Lost {
                message: other.to_string(),
            },
        };
        reply.results.push(result);
    }
    if session.usage().live_repls == 0 {
        let message = "every repl of the session is gone".to_string();
        done.session_state = Some("lost".into());
        done.reason = Some(message.clone());
        reply.lost = Some(message);
    }
    done.reply = serde_json::to_string(&reply).expect("replies serialise");
}
