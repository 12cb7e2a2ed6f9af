//! Tactic sessions over HTTP: `POST /v1/sessions`, `POST
//! /v1/sessions/{id}/tactics`, `POST /v1/sessions/{id}/finish`, `GET` and
//! `DELETE /v1/sessions/{id}` (docs/sessions.md).
//!
//! A session lives on one host (a `leanfarm worker`, or this process's
//! embedded workers), which holds its REPL. A handler never talks to a
//! host: it writes an operation addressed to the session's host in the
//! store and waits for the reply there, so that any API replica serves any
//! session. `finish` never asks the host: it assembles the proof from the
//! stored states and submits it as an ordinary check.

use crate::error::ApiError;
use crate::submit::{is_final, submit_and_wait, Target};
use crate::views::CheckView;
use crate::{auth, body, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use leanfarm_core::{CheckRequest, PinnedStatement, Policy, VerdictMessage};
use leanfarm_store::{NewSession, SessionOpDone, SessionOpRow, SessionRow, SessionStateRow};
use leanfarm_worker::sessions::{
    AssembleReply, AssembleRequest, CompleteResponse, LiveRequest, LiveResponse, OpenReply,
    OpenRequest, PollRequest, PollResponse, SessionOps, StateView, TacticPair, TacticsReply,
    TacticsRequest,
};
use leanfarm_worker::QueueError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The limits of tactic sessions (docs/sessions.md, "Limits").
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Live sessions of one tenant (429 `tenant_sessions_full` beyond).
    pub max_sessions_per_tenant: u64,
    /// Proof states one session may make (422 `session_states_full` beyond).
    pub max_states_per_session: u64,
    /// Pairs in one `tactics` request.
    pub max_pairs_per_request: usize,
    /// Tactics one tenant may send per second, shared by the live replicas.
    pub max_tactics_per_second: f64,
    /// A session unused this long is closed and its REPL stopped.
    pub idle_timeout: Duration,
    /// Largest per-tactic timeout a session may ask for, in seconds.
    pub max_tactic_timeout_seconds: f64,
    /// A host that has not polled for this long has lost its sessions.
    pub host_silence: Duration,
    /// How long an `open` waits for a host to take it.
    pub open_wait: Duration,
    /// Sessions the embedded workers hold at once.
    pub max_sessions_per_host: usize,
    /// REPLs one session may ask for.
    pub max_repls_per_session: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions_per_tenant: 16,
            max_states_per_session: 100_000,
            max_pairs_per_request: 64,
            max_tactics_per_second: 1000.0,
            idle_timeout: Duration::from_secs(300),
            max_tactic_timeout_seconds: 60.0,
            host_silence: Duration::from_secs(10),
            open_wait: Duration::from_secs(30),
            max_sessions_per_host: 8,
            max_repls_per_session: 4,
        }
    }
}

/// `POST /v1/sessions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenSession {
    /// The import header (`import Mathlib` lines).
    #[serde(default)]
    header: String,
    /// A theorem (`name`, `statement` without its proof, optional `preamble`).
    #[serde(default)]
    theorem: Option<PinnedStatement>,
    /// Or a body whose `sorry`s open the proof states.
    #[serde(default)]
    snippet: Option<String>,
    #[serde(default)]
    policy: Policy,
    /// REPLs the session holds; the pairs of one request run in parallel
    /// across them.
    #[serde(default = "one")]
    repls: usize,
    /// The time each tactic may take, in seconds.
    #[serde(default = "default_tactic_timeout")]
    tactic_timeout: f64,
}

fn one() -> usize {
    1
}

fn default_tactic_timeout() -> f64 {
    10.0
}

#[derive(Serialize)]
pub(crate) struct OpenedView {
    id: String,
    state: String,
    proof_states: Vec<StateView>,
    messages: Vec<VerdictMessage>,
}

/// One proof state as `GET /v1/sessions/{id}` shows it.
#[derive(Serialize)]
struct ProofStateView {
    proof_state: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tactic: Option<String>,
    goals: Vec<String>,
    proved: bool,
}

#[derive(Serialize)]
struct Usage {
    tactics: u64,
    proof_states: u64,
    created_at: i64,
    last_used_at: i64,
}

#[derive(Serialize)]
pub(crate) struct SessionView {
    id: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    proof_states: Vec<ProofStateView>,
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TacticsBody {
    pairs: Vec<TacticPair>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishBody {
    /// The proved state that ends the chain.
    proof_state: u64,
    /// The check's timeout, in seconds.
    #[serde(default = "leanfarm_core::default_timeout_seconds")]
    timeout: f64,
    /// How long to wait for the verdict, in seconds.
    #[serde(default = "default_finish_wait")]
    wait: f64,
}

fn default_finish_wait() -> f64 {
    60.0
}

#[derive(Serialize)]
struct FinishView {
    session_id: String,
    proof: String,
    check: CheckView,
}

/// The session, when it is the tenant's; another tenant's session is
/// `session_not_found`, exactly as one that does not exist.
async fn own_session(state: &AppState, tenant: &str, id: &str) -> Result<SessionRow, ApiError> {
    match state.store.get_session(id).await? {
        Some(row) if row.tenant == tenant => Ok(row),
        _ => Err(ApiError::SessionNotFound(crate::error::excerpt(id))),
    }
}

fn ended(row: &SessionRow) -> ApiError {
    let reason = row.reason.clone().unwrap_or_else(|| "unknown".into());
    match row.state.as_str() {
        "lost" => ApiError::SessionLost {
            id: row.id.clone(),
            reason,
        },
        _ => ApiError::SessionClosed {
            id: row.id.clone(),
            reason,
        },
    }
}

/// `POST /v1/sessions`: 201 with the session and its initial proof states.
pub(crate) async fn open_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    let request: OpenSession = body::parse_body(&state, &raw)?;
    let limits = &state.limits.sessions;
    if request.theorem.is_some() == request.snippet.is_some() {
        return Err(ApiError::InvalidSessionRequest(
            "give either `theorem` or `snippet` (with an optional `header`)".into(),
        ));
    }
    if let Some(theorem) = &request.theorem {
        theorem
            .signature()
            .map_err(|error| ApiError::InvalidPinnedStatement(error.to_string()))?;
    }
    let size = request.header.len()
        + request.snippet.as_ref().map_or(0, String::len)
        + request.theorem.as_ref().map_or(0, |theorem| {
            theorem.statement.len() + theorem.preamble.as_ref().map_or(0, String::len)
        });
    if size > state.limits.max_snippet_bytes {
        return Err(ApiError::SnippetTooLarge {
            id: "session".into(),
            size,
            limit: state.limits.max_snippet_bytes,
        });
    }
    if raw.as_ref().is_ok_and(|bytes| bytes.contains(&0)) {
        return Err(ApiError::NulByte("session".into()));
    }
    let timeout = request.tactic_timeout;
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= limits.max_tactic_timeout_seconds) {
        return Err(ApiError::InvalidTimeout {
            limit: limits.max_tactic_timeout_seconds,
        });
    }
    if request.repls == 0 || request.repls > limits.max_repls_per_session {
        return Err(ApiError::InvalidSessionRequest(format!(
            "`repls` must be between 1 and {}",
            limits.max_repls_per_session
        )));
    }
    let stored = OpenRequest {
        header: request.header,
        theorem: request.theorem,
        snippet: request.snippet,
        policy: request.policy,
        repls: request.repls,
        tactic_timeout_seconds: timeout,
        open_timeout_seconds: state.limits.max_timeout_seconds,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let op_id = uuid::Uuid::now_v7().to_string();
    let new = NewSession {
        id: id.clone(),
        tenant: tenant.clone(),
        request: serde_json::to_string(&stored).expect("requests serialise"),
        open_op_id: op_id.clone(),
        now: leanfarm_store::now_millis(),
    };
    if let Err(live) = state
        .store
        .create_session(&new, limits.max_sessions_per_tenant)
        .await?
    {
        state.metrics.request_rejected();
        return Err(ApiError::TenantSessionsFull {
            tenant,
            live,
            limit: limits.max_sessions_per_tenant,
        });
    }
    state.session_ops.notify_waiters();
    // Taking the open may wait for a host; running it imports the header.
    let deadline = Instant::now() + limits.open_wait + Duration::from_secs(300);
    let reply = match wait_for_reply(&state, &id, &op_id, deadline, Some(limits.open_wait)).await {
        Ok(reply) => reply,
        Err(error) => return Err(error),
    };
    let reply: OpenReply = serde_json::from_str(&reply)
        .map_err(|error| ApiError::Internal(format!("an open reply is not understood: {error}")))?;
    if reply.busy {
        return Err(ApiError::SessionCapacity(reply.refused.unwrap_or_default()));
    }
    if let Some(why) = reply.refused {
        return Err(ApiError::SessionRefused(why));
    }
    Ok((
        StatusCode::CREATED,
        Json(OpenedView {
            id,
            state: "open".into(),
            proof_states: reply.states,
            messages: reply.messages,
        }),
    )
        .into_response())
}

/// Wait until the host answers the operation, the session ends, or the
/// deadline passes (then the session is lost: its host did not answer in
/// time). `unowned_for`: an `open` no host took within this is refused.
async fn wait_for_reply(
    state: &AppState,
    session_id: &str,
    op_id: &str,
    deadline: Instant,
    unowned_for: Option<Duration>,
) -> Result<String, ApiError> {
    let started = Instant::now();
    loop {
        // Registered before the store is read, so no reply is missed.
        let replied = state.session_replies.notified();
        let op = state
            .store
            .get_session_op(op_id)
            .await?
            .ok_or_else(|| ApiError::Internal("a session operation vanished".into()))?;
        if let Some(reply) = op.reply {
            return Ok(reply);
        }
        let row = state
            .store
            .get_session(session_id)
            .await?
            .ok_or_else(|| ApiError::SessionNotFound(session_id.to_string()))?;
        if !matches!(row.state.as_str(), "opening" | "open") {
            // The reply that ended the session (a failed open, a lost REPL)
            // may have been stored since the operation was read.
            if let Some(reply) = state
                .store
                .get_session_op(op_id)
                .await?
                .and_then(|op| op.reply)
            {
                return Ok(reply);
            }
            return Err(ended(&row));
        }
        if let Some(wait) = unowned_for {
            if op.host.is_none() && started.elapsed() >= wait {
                state
                    .store
                    .end_session(session_id, "closed", "no worker took the session")
                    .await?;
                return Err(ApiError::NoSessionHost {
                    seconds: wait.as_secs(),
                });
            }
        }
        if Instant::now() >= deadline {
            let reason = "the worker holding the session did not answer in time";
            state.store.end_session(session_id, "lost", reason).await?;
            return Err(ApiError::SessionLost {
                id: session_id.to_string(),
                reason: reason.into(),
            });
        }
        // Another replica's host answers through the store only.
        let _ = tokio::time::timeout(Duration::from_millis(20), replied).await;
    }
}

/// Address an operation to the session's host and wait for its reply.
async fn send_op(
    state: &AppState,
    tenant: &str,
    row: &SessionRow,
    kind: &str,
    request: &impl Serialize,
    deadline: Instant,
) -> Result<String, ApiError> {
    let op = SessionOpRow {
        id: uuid::Uuid::now_v7().to_string(),
        session_id: row.id.clone(),
        host: row.host.clone(),
        kind: kind.into(),
        request: serde_json::to_string(request).expect("requests serialise"),
        reply: None,
        created_at: leanfarm_store::now_millis(),
    };
    if !state.store.add_session_op(&op).await? {
        let row = own_session(state, tenant, &row.id).await?;
        return Err(ended(&row));
    }
    state.session_ops.notify_waiters();
    wait_for_reply(state, &row.id, &op.id, deadline, None).await
}

/// `POST /v1/sessions/{id}/tactics`: one result per pair, in order.
pub(crate) async fn apply_tactics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    let request: TacticsBody = body::parse_body(&state, &raw)?;
    let row = own_session(&state, &tenant, &id).await?;
    if row.state != "open" {
        return Err(ended(&row));
    }
    let limits = &state.limits.sessions;
    let pairs = request.pairs.len();
    if pairs == 0 || pairs > limits.max_pairs_per_request {
        return Err(ApiError::InvalidSessionRequest(format!(
            "a request holds 1 to {} pairs; this one has {pairs}",
            limits.max_pairs_per_request
        )));
    }
    for pair in &request.pairs {
        if pair.tactic.len() > state.limits.max_snippet_bytes || pair.tactic.contains('\0') {
            return Err(ApiError::InvalidSessionRequest(
                "a tactic is longer than a snippet may be, or holds a NUL byte".into(),
            ));
        }
    }
    if row.states + pairs as u64 > limits.max_states_per_session {
        return Err(ApiError::SessionStatesFull {
            id,
            states: row.states,
            limit: limits.max_states_per_session,
        });
    }
    let known: std::collections::HashSet<u64> = state
        .store
        .session_states(&id)
        .await?
        .into_iter()
        .map(|state| state.state_id)
        .collect();
    if let Some(pair) = request
        .pairs
        .iter()
        .find(|pair| !known.contains(&pair.proof_state))
    {
        return Err(ApiError::UnknownProofState {
            id,
            proof_state: pair.proof_state,
        });
    }
    state.tactic_rates.admit(&state, &tenant, pairs)?;
    let timeout = serde_json::from_str::<OpenRequest>(&row.request)
        .map(|stored| stored.tactic_timeout_seconds)
        .unwrap_or(limits.max_tactic_timeout_seconds);
    // Each tactic has its own deadline on the host (the pairs may share a
    // REPL); beyond all of them and the host's silence, the host is gone.
    let deadline =
        Instant::now() + Duration::from_secs_f64(timeout * pairs as f64) + limits.host_silence;
    let request = TacticsRequest {
        pairs: request.pairs,
    };
    let reply = send_op(&state, &tenant, &row, "tactics", &request, deadline).await?;
    let reply: TacticsReply = serde_json::from_str(&reply).map_err(|error| {
        ApiError::Internal(format!("a tactics reply is not understood: {error}"))
    })?;
    Ok(Json(serde_json::json!({
        "session_id": id,
        "results": reply.results,
    }))
    .into_response())
}

/// `GET /v1/sessions/{id}`.
pub(crate) async fn get_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    let row = own_session(&state, &tenant, &id).await?;
    let states = state.store.session_states(&id).await?;
    Ok(Json(SessionView {
        id: row.id,
        state: row.state,
        reason: row.reason,
        usage: Usage {
            tactics: row.tactics,
            proof_states: states.len() as u64,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        },
        proof_states: states.into_iter().map(state_view).collect(),
    }))
}

fn state_view(row: SessionStateRow) -> ProofStateView {
    ProofStateView {
        proof_state: row.state_id,
        parent: row.parent,
        tactic: row.tactic,
        goals: serde_json::from_str(&row.goals).unwrap_or_default(),
        proved: row.proved,
    }
}

/// `DELETE /v1/sessions/{id}`: the session is closed; its host stops the REPL.
pub(crate) async fn delete_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    own_session(&state, &tenant, &id).await?;
    state
        .store
        .end_session(&id, "closed", "closed by its tenant")
        .await?;
    let row = own_session(&state, &tenant, &id).await?;
    Ok(Json(serde_json::json!({ "id": id, "state": row.state })))
}

/// `POST /v1/sessions/{id}/finish`: the proof of the chain that ends in
/// `proof_state`, checked as an ordinary check; the answer is that check.
pub(crate) async fn finish_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = auth::user_tenant(&state, &headers).await?;
    let request: FinishBody = body::parse_body(&state, &raw)?;
    let max_wait = state.limits.max_wait_seconds;
    if !(request.wait.is_finite() && (0.0..=max_wait).contains(&request.wait)) {
        return Err(ApiError::InvalidWait { limit: max_wait });
    }
    let row = own_session(&state, &tenant, &id).await?;
    if row.state != "open" {
        return Err(ended(&row));
    }
    let stored: OpenRequest = serde_json::from_str(&row.request)
        .map_err(|error| ApiError::Internal(format!("a stored session is corrupt: {error}")))?;
    let states: HashMap<u64, SessionStateRow> = state
        .store
        .session_states(&id)
        .await?
        .into_iter()
        .map(|state| (state.state_id, state))
        .collect();
    let chain = chain(&states, request.proof_state).map_err(|why| match why {
        ChainError::Unknown => ApiError::UnknownProofState {
            id: id.clone(),
            proof_state: request.proof_state,
        },
        ChainError::NotProved(why) => ApiError::ProofStateNotProved {
            id: id.clone(),
            proof_state: request.proof_state,
            why,
        },
    })?;
    // The host assembles the text the session opened with, the chain's
    // tactics in place of its `sorry`.
    let deadline = Instant::now() + state.limits.sessions.host_silence;
    let reply = send_op(
        &state,
        &tenant,
        &row,
        "assemble",
        &AssembleRequest { chain },
        deadline,
    )
    .await?;
    let reply: AssembleReply = serde_json::from_str(&reply).map_err(|error| {
        ApiError::Internal(format!("an assemble reply is not understood: {error}"))
    })?;
    let proof = match (reply.proof, reply.error) {
        (Some(proof), _) => proof,
        (None, why) => {
            return Err(ApiError::ProofStateNotProved {
                id,
                proof_state: request.proof_state,
                why: why.unwrap_or_else(|| "no proof was assembled".into()),
            })
        }
    };
    // A theorem's session proves that theorem: the check pins it, unless
    // the session's policy pins one itself.
    let mut policy = stored.policy;
    if policy.pinned.is_none() {
        policy.pinned = stored.theorem;
    }
    let check = CheckRequest {
        custom_id: Some(format!("session:{id}:{}", request.proof_state)),
        code: proof.clone(),
        timeout_seconds: request.timeout,
        policy,
        infotree: None,
        trace_context: None,
    };
    let (_, records) = submit_and_wait(
        &state,
        &tenant,
        &Target::default(),
        vec![check],
        Duration::from_secs_f64(request.wait),
        None,
    )
    .await?;
    let record = records
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("a finished session's check vanished".into()))?;
    let status = if is_final(record.state) {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(FinishView {
            session_id: id,
            proof,
            check: CheckView::from(record),
        }),
    )
        .into_response())
}

enum ChainError {
    Unknown,
    NotProved(String),
}

/// The states from a root to `last`, which must be proved.
fn chain(states: &HashMap<u64, SessionStateRow>, last: u64) -> Result<Vec<u64>, ChainError> {
    let end = states.get(&last).ok_or(ChainError::Unknown)?;
    if !end.proved {
        return Err(ChainError::NotProved("goals remain".into()));
    }
    let mut chain = vec![last];
    let mut current = end;
    while let Some(parent) = current.parent {
        chain.push(parent);
        current = states
            .get(&parent)
            .ok_or_else(|| ChainError::NotProved("its chain is broken".into()))?;
        if chain.len() > states.len() + 1 {
            return Err(ChainError::NotProved("its chain has a cycle".into()));
        }
    }
    if chain.len() == 1 {
        return Err(ChainError::NotProved(
            "no tactic was applied: it is a root state".into(),
        ));
    }
    chain.reverse();
    Ok(chain)
}

/// Token buckets of tactics per tenant, at this replica's share of
/// `max_tactics_per_second` (divided by the live replicas, as request rates are).
#[derive(Default)]
pub(crate) struct TacticRates {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TacticRates {
    fn admit(&self, state: &AppState, tenant: &str, tactics: usize) -> Result<(), ApiError> {
        let rate = state.limits.sessions.max_tactics_per_second;
        if rate.is_infinite() {
            return Ok(());
        }
        let share = rate / state.rates.live_replicas() as f64;
        let capacity = share.max(tactics as f64);
        let mut buckets = self.buckets.lock().expect("tactic rate lock");
        let now = Instant::now();
        let (tokens, refilled) = buckets.entry(tenant.to_string()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*refilled).as_secs_f64() * share).min(capacity);
        *refilled = now;
        if *tokens >= tactics as f64 {
            *tokens -= tactics as f64;
            Ok(())
        } else {
            state.metrics.request_rejected();
            Err(ApiError::TacticsRateLimited {
                tenant: tenant.to_string(),
                rate,
            })
        }
    }
}

/// The operations of the embedded workers' host, straight on the store.
pub struct InProcessSessionOps {
    state: Arc<AppState>,
}

impl InProcessSessionOps {
    pub fn new(state: Arc<AppState>) -> InProcessSessionOps {
        InProcessSessionOps { state }
    }
}

fn queue_error(error: leanfarm_store::StoreError) -> QueueError {
    QueueError::Store(error)
}

impl SessionOps for InProcessSessionOps {
    async fn take(
        &self,
        host: &str,
        open_capacity: usize,
    ) -> Result<Vec<SessionOpRow>, QueueError> {
        let wake = self.state.session_ops.notified();
        let taken = self
            .state
            .store
            .take_session_ops(host, open_capacity, 64, leanfarm_store::now_millis())
            .await
            .map_err(queue_error)?;
        if taken.is_empty() {
            // Operations written by this process wake it; others' are polled.
            let _ = tokio::time::timeout(Duration::from_millis(20), wake).await;
        }
        Ok(taken)
    }

    async fn complete(&self, done: SessionOpDone) -> Result<(), QueueError> {
        self.state
            .store
            .complete_session_op(&done)
            .await
            .map_err(queue_error)?;
        self.state.session_replies.notify_waiters();
        Ok(())
    }

    async fn live(&self, host: &str) -> Result<Vec<String>, QueueError> {
        self.state
            .store
            .host_sessions(host)
            .await
            .map_err(queue_error)
    }
}

/// Only the farm's own workers host sessions: a worker restricted to one
/// tenant could be handed another tenant's session.
async fn session_host_worker(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match auth::worker(state, headers).await? {
        leanfarm_store::WorkerAuthority::Farm => Ok(()),
        leanfarm_store::WorkerAuthority::Tenant(_) => Err(ApiError::Forbidden(
            "only a farm worker token may host tactic sessions".into(),
        )),
    }
}

fn host_name(host: &str) -> Result<(), ApiError> {
    crate::input_limits::string("host", host, crate::input_limits::MAX_ID_BYTES)
}

/// `POST /v1/worker/sessions/poll`: a remote host's long poll.
pub(crate) async fn worker_poll(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    session_host_worker(&state, &headers).await?;
    let request: PollRequest = body::parse_body(&state, &raw)?;
    host_name(&request.host)?;
    if !(request.wait_seconds.is_finite() && (0.0..=10.0).contains(&request.wait_seconds)) {
        return Err(ApiError::InvalidRequest(
            "wait_seconds must be between 0 and 10".into(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(request.wait_seconds);
    loop {
        let wake = state.session_ops.notified();
        let ops = state
            .store
            .take_session_ops(
                &request.host,
                request.open_capacity.min(64),
                64,
                leanfarm_store::now_millis(),
            )
            .await?;
        if !ops.is_empty() || Instant::now() >= deadline {
            return Ok(Json(PollResponse { ops }));
        }
        // Operations written by another replica are found by the next read.
        let _ = tokio::time::timeout(Duration::from_millis(20), wake).await;
    }
}

/// `POST /v1/worker/sessions/complete`.
pub(crate) async fn worker_complete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<CompleteResponse>, ApiError> {
    session_host_worker(&state, &headers).await?;
    let done: SessionOpDone = body::parse_body(&state, &raw)?;
    host_name(&done.host)?;
    let stored = state.store.complete_session_op(&done).await?;
    state.session_replies.notify_waiters();
    Ok(Json(CompleteResponse { stored }))
}

/// `POST /v1/worker/sessions/live`.
pub(crate) async fn worker_live(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<LiveResponse>, ApiError> {
    session_host_worker(&state, &headers).await?;
    let request: LiveRequest = body::parse_body(&state, &raw)?;
    host_name(&request.host)?;
    let sessions = state.store.host_sessions(&request.host).await?;
    Ok(Json(LiveResponse { sessions }))
}

/// End idle sessions and those of silent hosts, every second, until `stop`.
pub(crate) async fn sweep_until_shutdown(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = leanfarm_store::now_millis();
        let limits = &state.limits.sessions;
        let idle_before = now - limits.idle_timeout.as_millis() as i64;
        let silent_before = now - limits.host_silence.as_millis() as i64;
        match state
            .store
            .end_stale_sessions(idle_before, silent_before)
            .await
        {
            Ok((idle, lost)) => {
                if idle + lost > 0 {
                    tracing::info!(idle, lost, "ended stale tactic sessions");
                    state.session_replies.notify_waiters();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot end stale tactic sessions"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = async { let _ = stop.wait_for(|stop| *stop).await; } => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, parent: Option<u64>, tactic: &str, proved: bool) -> SessionStateRow {
        SessionStateRow {
            state_id: id,
            parent,
            tactic: parent.map(|_| tactic.to_string()),
            goals: "[]".into(),
            proved,
        }
    }

    #[test]
    fn a_chain_is_read_back_to_its_initial_state() {
        let states: HashMap<u64, SessionStateRow> = [
            row(0, None, "", false),
            row(1, Some(0), "intro n", false),
            row(2, Some(0), "simp", false),
            row(3, Some(1), "omega", true),
        ]
        .into_iter()
        .map(|row| (row.state_id, row))
        .collect();
        assert_eq!(chain(&states, 3).ok(), Some(vec![0, 1, 3]));
        assert!(matches!(chain(&states, 2), Err(ChainError::NotProved(_))));
        assert!(matches!(chain(&states, 9), Err(ChainError::Unknown)));
    }
}
