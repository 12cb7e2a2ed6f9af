//! Tactic sessions: a theorem opened in one or more sandboxed REPLs, and
//! tactics applied to any of its proof states, one step at a time, for
//! provers that search proof trees.
//!
//! # Opening
//! [`Driver::open_session`] takes an import header and either a theorem
//! statement (with its optional preamble: `open` and `variable` lines) or a
//! snippet whose `sorry`s open proof states. The text passes the same
//! screen as a checked body. Each of the session's REPLs (`repls`, taken
//! warm from the pool when one holds the header, else started in the
//! sandbox) elaborates it; the `sorry`s Lean reports are the session's root
//! proof states, held by every REPL. A REPL that joined a session never
//! goes back to the pool: it is killed when the session is closed or
//! dropped.
//!
//! # Applying tactics
//! [`Session::apply`] runs one tactic on one proof state and answers a new
//! state with its goals (pretty-printed by Lean), `proved` (no goal left)
//! or Lean's error. Proof states are immutable: any earlier state can be
//! extended again, so a search branches by applying to an older state.
//! A state lives in the REPL that made it (a root in all of them);
//! [`Session::apply_all`] runs a batch of expansions in parallel across the
//! session's REPLs, one at a time in each. Every tactic first passes the
//! body screen, as the proof of a theorem, under the session's policy
//! (`screen::screen_tactic`): a tactic that runs code is refused unless the
//! policy allows metaprogramming.
//!
//! Each tactic has a deadline (`tactic_timeout`) and runs under the
//! sandbox's memory limit (the REPL's cgroup). A REPL that does not answer
//! in time, runs out of memory, crashes or prints garbage is killed, and
//! the tactic's answer is [`SessionError::ReplLost`] with the reason
//! (`timeout`, `out_of_memory`, `repl_crashed`, ...). The session goes on:
//! a later call on a state that no live REPL holds starts a REPL again in
//! the lost one's place, elaborates the opening and replays the tactics
//! that led to the state (`SessionUsage::restarts` counts it; a replayed
//! tactic that fails again answers [`SessionError::StateLost`], a REPL
//! that cannot be started the driver's error or [`SessionError::Busy`]).
//! Nothing waits without a deadline.
//!
//! # Pickles
//! [`Session::pickle`] writes a state to a file in its REPL's sandbox
//! (`pickleTo`) and returns the bytes, so that the caller can keep them (in
//! the object store); [`Session::unpickle`] hands such bytes to a REPL of
//! this session or of another one (`unpickleProofStateFrom`), with the
//! state's [`StateOrigin`] so that a proof found from it can still be
//! assembled. [`Session::widen`] copies a state into every REPL of the
//! session that lacks it, so that its children can be expanded in
//! parallel.
//!
//! # Cost
//! `bench/session_driver.sh` measures what a session adds to a tactic's
//! round-trip over a bare pipe, batch throughput with 1, 2 and 4 REPLs, and
//! restoring a deep state by pickle against re-running its tactics.
//!
//! # Finishing
//! The session's answers are never a verdict. [`Session::assemble_proof`]
//! builds the text of a proved chain of states (the tactics in order, in
//! place of the opening's `sorry`), which the caller checks through the
//! ordinary check path.

use crate::repl::{Repl, ReplFailure};
use crate::{failure_reason, screen, shift_messages, Driver, DriverError};
use lean_protocol::{ProofStepReply, Reply, Request, Severity, TacticRequest};
use leanfarm_core::{
    repl_header, split_header, PinnedStatement, Policy, ReasonCode, VerdictMessage, VerdictReason,
};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A proof state of a session: numbered from 0 in the order the session
/// made them (not the REPL's own numbers).
pub type StateId = u64;

/// Most REPLs one session may hold.
pub const MAX_REPLS_PER_SESSION: usize = 16;
/// Longest tactic accepted, in bytes.
pub const MAX_TACTIC_BYTES: usize = 64 * 1024;

/// What a session opens.
#[derive(Clone, Debug, PartialEq)]
pub enum Opening {
    /// A theorem statement (`theorem NAME BINDERS : TYPE`, a trailing
    /// `:= by sorry` ignored) and its preamble; one root proof state.
    Theorem(PinnedStatement),
    /// A body (without imports) whose `sorry`s open the root proof states.
    Snippet(String),
}

/// A request to open a session.
#[derive(Clone, Debug)]
pub struct OpenRequest {
    /// The import lines (may be empty).
    pub header: String,
    pub opening: Opening,
    /// The policy tactics are screened under (and the opening's text).
    pub policy: Policy,
    /// REPLs the session holds (1 to `MAX_REPLS_PER_SESSION`).
    pub repls: usize,
    /// Deadline of one tactic, pickle or unpickle.
    pub tactic_timeout: Duration,
    /// Deadline of the opening's elaboration in each REPL (the header's
    /// import, when a REPL has to be started, has its own).
    pub open_timeout: Duration,
}

impl OpenRequest {
    /// A one-REPL session on a theorem, with 10 s per tactic and 60 s to open.
    pub fn theorem(header: &str, statement: PinnedStatement) -> OpenRequest {
        OpenRequest {
            header: header.to_string(),
            opening: Opening::Theorem(statement),
            policy: Policy::default(),
            repls: 1,
            tactic_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(60),
        }
    }

    /// A one-REPL session on a snippet's `sorry`s, with the same deadlines.
    pub fn snippet(header: &str, body: &str) -> OpenRequest {
        OpenRequest {
            opening: Opening::Snippet(body.to_string()),
            ..OpenRequest::theorem(
                header,
                PinnedStatement {
                    name: String::new(),
                    statement: String::new(),
                    preamble: None,
                },
            )
        }
    }
}

/// A proof state and its goals, as Lean prints them (`h : T` lines, then
/// `⊢ T`; `case tag` first when the goal has one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProofState {
    pub id: StateId,
    pub goals: Vec<String>,
}

/// A session just opened: its root proof states and Lean's messages about
/// the opening (positions in the opening's text: the statement's line is
/// after the preamble's).
pub struct Opened {
    pub session: Session,
    pub states: Vec<ProofState>,
    pub messages: Vec<VerdictMessage>,
}

/// What applying one tactic gave.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TacticOutcome {
    /// A new proof state with goals left.
    Open { state: StateId, goals: Vec<String> },
    /// No goal left: the chain to `state` is a proof (to be checked).
    Proved { state: StateId },
    /// Lean refused the tactic, or it left the proof incomplete with no
    /// goal to work on (`sorry`, metavariables); no state is made.
    Error {
        messages: Vec<VerdictMessage>,
        /// The REPL's `proofStatus`, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    /// The screen refused the tactic; no REPL saw it.
    Refused { reason: VerdictReason },
}

/// Where a state comes from: the root it grew from (by index, in the order
/// of `Opened::states`) and the tactics applied since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StateOrigin {
    pub root: usize,
    pub tactics: Vec<String>,
}

/// One state of a session, for listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    pub id: StateId,
    pub parent: Option<StateId>,
    /// The tactic that made it from `parent`.
    pub tactic: Option<String>,
    pub goals: Vec<String>,
    pub proved: bool,
    /// Whether a live REPL of the session still holds it.
    pub live: bool,
    /// Lean's messages about the tactic that made it (warnings, and infos
    /// such as a `Try this` suggestion).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<VerdictMessage>,
}

/// What a session has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionUsage {
    /// Tactics sent to a REPL (refused ones are not).
    pub tactics: u64,
    /// Tactics the screen refused.
    pub refused: u64,
    /// Time the REPLs took to answer tactics, in milliseconds.
    pub tactic_ms: u64,
    /// REPLs the session holds alive.
    pub live_repls: usize,
    /// REPLs started again, to replace lost ones, by re-running the
    /// opening and the tactics that led to a state.
    pub restarts: u64,
    pub states: usize,
}

/// Why a session call failed (a failure of the session, not Lean's answer
/// about a tactic, which is a `TacticOutcome`).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("refused: {}", .0.message)]
    Refused(VerdictReason),
    #[error("the opening made no proof state (no `sorry` was reached)")]
    NoProofState { messages: Vec<VerdictMessage> },
    #[error("the farm holds its most session repls ({0}); try again later")]
    Busy(usize),
    #[error("repls per session must be between 1 and {MAX_REPLS_PER_SESSION}, not {0}")]
    BadRepls(usize),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("no proof state {0} in this session")]
    UnknownState(StateId),
    #[error("proof state {0} was held only by a repl that is gone")]
    StateLost(StateId),
    #[error("the session's repl was lost: {}", .reason.message)]
    ReplLost { reason: VerdictReason },
    #[error("every repl of the session is gone")]
    Lost,
    #[error("the session is closed")]
    Closed,
    #[error("the repl cannot pickle or unpickle the proof state: {0}")]
    Pickle(String),
    #[error("not a proved chain of states: {0}")]
    BadChain(String),
}

/// How many REPLs all sessions of a driver hold, and the most they may.
pub(crate) struct SessionRepls {
    live: AtomicUsize,
    max: AtomicUsize,
}

impl SessionRepls {
    pub(crate) fn new(max: usize) -> SessionRepls {
        SessionRepls {
            live: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    fn reserve(&self, count: usize) -> Result<(), SessionError> {
        let max = self.max.load(Ordering::Relaxed);
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live + count <= max).then_some(live + count)
            })
            .map(|_| ())
            .map_err(|_| SessionError::Busy(max))
    }

    fn release(&self, count: usize) {
        self.live.fetch_sub(count, Ordering::AcqRel);
    }
}

impl Driver {
    /// Most REPLs all sessions of this driver may hold at once (by default
    /// the pool's `max_repls`).
    pub fn set_max_session_repls(&self, max: usize) {
        self.inner.session_repls.max.store(max, Ordering::Relaxed);
    }

    /// REPLs held by sessions now.
    pub fn session_repls(&self) -> usize {
        self.inner.session_repls.live.load(Ordering::Relaxed)
    }

    /// Open a tactic session (see the module's documentation).
    pub async fn open_session(&self, request: OpenRequest) -> Result<Opened, SessionError> {
        if request.repls == 0 || request.repls > MAX_REPLS_PER_SESSION {
            return Err(SessionError::BadRepls(request.repls));
        }
        let text = OpeningText::new(&request)?;
        self.inner.session_repls.reserve(request.repls)?;
        let reservation = Reservation {
            driver: self.clone(),
            count: request.repls,
        };
        let starts = (0..request.repls).map(|_| self.session_repl(&text, request.open_timeout));
        let started = futures::future::join_all(starts).await;
        let mut repls = Vec::new();
        let mut first_error = None;
        for result in started {
            match result {
                Ok(started) => repls.push(started),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            for (repl, _) in repls {
                tokio::spawn(repl.kill());
            }
            return Err(error);
        }
        let (_, first_reply) = &repls[0];
        let messages = shift_messages(&first_reply.messages, 0);
        let roots: Vec<Vec<String>> = first_reply
            .sorries
            .iter()
            .map(|sorry| vec![sorry.goal.clone()])
            .collect();
        if roots.is_empty() {
            for (repl, _) in repls {
                tokio::spawn(repl.kill());
            }
            return Err(SessionError::NoProofState { messages });
        }
        let sites: Vec<Site> = first_reply
            .sorries
            .iter()
            .map(|sorry| Site {
                start: sorry.pos.map_or((1, 0), |pos| (pos.line, pos.column)),
                end: sorry.end_pos.map_or((1, 0), |pos| (pos.line, pos.column)),
            })
            .collect();
        let mut states: Vec<StateRecord> = roots
            .iter()
            .enumerate()
            .map(|(root, goals)| StateRecord {
                messages: Vec::new(),
                parent: None,
                origin: StateOrigin {
                    root,
                    tactics: Vec::new(),
                },
                goals: goals.clone(),
                proved: false,
                places: Vec::new(),
            })
            .collect();
        let mut slots = Vec::new();
        for (index, (repl, reply)) in repls.into_iter().enumerate() {
            if reply.sorries.len() != states.len() {
                return Err(SessionError::Driver(DriverError::Toolchain(
                    "the session's repls disagree on the opening's proof states".into(),
                )));
            }
            for (state, sorry) in states.iter_mut().zip(&reply.sorries) {
                let Some(proof_state) = sorry.proof_state else {
                    return Err(SessionError::Driver(DriverError::Toolchain(
                        "a sorry came without a proof state".into(),
                    )));
                };
                state.places.push(Place {
                    slot: index,
                    generation: 0,
                    proof_state,
                });
            }
            slots.push(tokio::sync::Mutex::new(Slot {
                repl: Some(repl),
                generation: 0,
            }));
        }
        // The session releases its REPLs from now on.
        let mut reservation = reservation;
        reservation.count = 0;
        drop(reservation);
        let opened_states = states
            .iter()
            .enumerate()
            .map(|(id, state)| ProofState {
                id: id as StateId,
                goals: state.goals.clone(),
            })
            .collect();
        let session = Session {
            inner: Arc::new(Inner {
                driver: self.clone(),
                policy: request.policy,
                tactic_timeout: request.tactic_timeout,
                text,
                sites,
                open_timeout: request.open_timeout,
                status: slots
                    .iter()
                    .map(|_| SlotStatus {
                        alive: AtomicBool::new(true),
                        generation: AtomicU64::new(0),
                    })
                    .collect(),
                slots,
                states: std::sync::Mutex::new(states),
                closed: AtomicBool::new(false),
                restarts: AtomicU64::new(0),
                last_used: std::sync::Mutex::new(Instant::now()),
                tactics: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                tactic_micros: AtomicU64::new(0),
            }),
        };
        Ok(Opened {
            session,
            states: opened_states,
            messages,
        })
    }

    /// One REPL for a session: warm from the pool or started, then taken out
    /// of the pool for good, with the opening elaborated on its base
    /// environment.
    async fn session_repl(
        &self,
        text: &OpeningText,
        open_timeout: Duration,
    ) -> Result<(Repl, lean_protocol::CommandReply), SessionError> {
        let mut checkout = self.inner.pool.checkout(&text.repl_header, false).await?;
        if checkout.repl.is_none() {
            match self.start_repl(&text.repl_header).await? {
                Ok(repl) => checkout.repl = Some(repl),
                Err(verdict) => {
                    checkout.discard();
                    let reason = verdict.reason().cloned().unwrap_or_else(|| {
                        VerdictReason::new(ReasonCode::HeaderError, "the header does not load")
                    });
                    return Err(SessionError::Refused(reason));
                }
            }
        }
        let mut repl = checkout.detach().expect("checkout holds a repl");
        let deadline = Instant::now() + open_timeout;
        match repl
            .command(&text.body, Some(repl.base_env), deadline)
            .await
        {
            Ok(reply) => Ok((repl, reply)),
            Err(failure) => {
                let report = repl.kill().await;
                let reason = failure_reason(&failure, &report, open_timeout.as_secs_f64());
                Err(SessionError::ReplLost { reason })
            }
        }
    }
}

/// Frees a session's reserved REPLs if opening fails half way.
struct Reservation {
    driver: Driver,
    count: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.driver.inner.session_repls.release(self.count);
    }
}

/// The opening as sent to the REPLs, and what assembling a proof needs.
struct OpeningText {
    /// The header as the check path would run it (`split_header`'s).
    header: String,
    repl_header: String,
    /// What each REPL elaborates (positions of sorries are in it).
    body: String,
    theorem: Option<TheoremText>,
}

struct TheoremText {
    /// The preamble and `theorem NAME SIGNATURE := by`, without the proof.
    head: String,
}

impl OpeningText {
    fn new(request: &OpenRequest) -> Result<OpeningText, SessionError> {
        let (text, theorem) = match &request.opening {
            Opening::Theorem(statement) => {
                let signature = statement.signature().map_err(|error| {
                    SessionError::Refused(VerdictReason::new(
                        ReasonCode::LeanError,
                        error.to_string(),
                    ))
                })?;
                let mut head = String::new();
                if let Some(preamble) = &statement.preamble {
                    head.push_str(preamble.trim_end());
                    head.push('\n');
                }
                head.push_str(&format!("theorem {} {signature} := by", statement.name));
                let text = format!("{head}\n  sorry");
                (text, Some(TheoremText { head }))
            }
            Opening::Snippet(body) => (body.clone(), None),
        };
        let header_only = split_header(&request.header);
        if header_only.header_problem.is_some() || !header_only.body.trim().is_empty() {
            return Err(SessionError::Refused(VerdictReason::new(
                ReasonCode::HeaderError,
                "the header may hold only `import Module` lines",
            )));
        }
        let code = if request.header.trim().is_empty() {
            text
        } else {
            format!("{}\n{text}", request.header.trim_end())
        };
        let snippet = split_header(&code);
        if let Some(problem) = &snippet.header_problem {
            return Err(SessionError::Refused(VerdictReason::new(
                ReasonCode::HeaderError,
                format!("the import header may hold only `import Module` lines: {problem}"),
            )));
        }
        if let Some(reason) = screen::screen(&snippet.body, &request.policy) {
            return Err(SessionError::Refused(reason));
        }
        Ok(OpeningText {
            header: snippet.header.to_string(),
            repl_header: repl_header(&snippet.header),
            body: snippet.body.to_string(),
            theorem,
        })
    }
}

/// Where a root's `sorry` stands in the opening's body (line, column).
struct Site {
    start: (u32, u32),
    end: (u32, u32),
}

/// A REPL of a session. A slot whose REPL was lost gets a new one when a
/// state is needed that no live REPL holds (`Session::restore`); its
/// generation then changes, and the places of the old one are void.
struct Slot {
    repl: Option<Repl>,
    generation: u64,
}

/// What `Session::is_live` reads without waiting for a busy slot.
struct SlotStatus {
    alive: AtomicBool,
    generation: AtomicU64,
}

/// A REPL's own number for a state.
#[derive(Clone, Copy, Debug)]
struct Place {
    slot: usize,
    generation: u64,
    proof_state: u64,
}

struct StateRecord {
    messages: Vec<VerdictMessage>,
    parent: Option<StateId>,
    origin: StateOrigin,
    goals: Vec<String>,
    proved: bool,
    places: Vec<Place>,
}

/// A tactic session. Cheap to clone; the REPLs are killed when it is
/// closed or its last clone is dropped.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    driver: Driver,
    policy: Policy,
    tactic_timeout: Duration,
    text: OpeningText,
    sites: Vec<Site>,
    open_timeout: Duration,
    slots: Vec<tokio::sync::Mutex<Slot>>,
    status: Vec<SlotStatus>,
    states: std::sync::Mutex<Vec<StateRecord>>,
    closed: AtomicBool,
    restarts: AtomicU64,
    /// When a call last used the session (for an idle timeout).
    last_used: std::sync::Mutex<Instant>,
    tactics: AtomicU64,
    refused: AtomicU64,
    tactic_micros: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a `Repl` kills its process tree.
        let live = self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.get_mut().repl.take())
            .count();
        self.driver.inner.session_repls.release(live);
    }
}

impl Session {
    /// Apply `tactic` to `state`.
    pub async fn apply(&self, state: StateId, tactic: &str) -> Result<TacticOutcome, SessionError> {
        self.check_open()?;
        if let Some(reason) = screen_tactic(tactic, &self.inner.policy) {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(TacticOutcome::Refused { reason });
        }
        let (mut slot, place) = self.lock_place(state).await?;
        let request = Request::Tactic(TacticRequest {
            tactic: tactic.to_string(),
            proof_state: place.proof_state,
        });
        let started = Instant::now();
        let reply = self.send(&mut slot, place.slot, &request).await;
        self.inner.tactics.fetch_add(1, Ordering::Relaxed);
        self.inner
            .tactic_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        drop(slot);
        let reply = reply?;
        Ok(self.record(state, place, tactic, reply))
    }

    /// Apply every `(state, tactic)` pair, in parallel across the session's
    /// REPLs; the answers are in the order of the pairs.
    pub async fn apply_all(
        &self,
        pairs: &[(StateId, String)],
    ) -> Vec<Result<TacticOutcome, SessionError>> {
        futures::future::join_all(
            pairs
                .iter()
                .map(|(state, tactic)| self.apply(*state, tactic)),
        )
        .await
    }

    /// The goals of a state.
    pub fn goals(&self, state: StateId) -> Result<Vec<String>, SessionError> {
        let states = self.inner.states.lock().expect("session states");
        states
            .get(state as usize)
            .map(|record| record.goals.clone())
            .ok_or(SessionError::UnknownState(state))
    }

    /// Where a state comes from (to store with its pickle).
    pub fn origin(&self, state: StateId) -> Result<StateOrigin, SessionError> {
        let states = self.inner.states.lock().expect("session states");
        states
            .get(state as usize)
            .map(|record| record.origin.clone())
            .ok_or(SessionError::UnknownState(state))
    }

    /// Every state of the session, in order.
    pub fn states(&self) -> Vec<StateSummary> {
        let states = self.inner.states.lock().expect("session states");
        states
            .iter()
            .enumerate()
            .map(|(id, record)| StateSummary {
                id: id as StateId,
                parent: record.parent,
                tactic: record.parent.and(record.origin.tactics.last().cloned()),
                goals: record.goals.clone(),
                proved: record.proved,
                live: record.places.iter().any(|place| self.is_live(place)),
                messages: record.messages.clone(),
            })
            .collect()
    }

    pub fn usage(&self) -> SessionUsage {
        SessionUsage {
            tactics: self.inner.tactics.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            tactic_ms: self.inner.tactic_micros.load(Ordering::Relaxed) / 1000,
            live_repls: self
                .inner
                .status
                .iter()
                .filter(|status| status.alive.load(Ordering::Acquire))
                .count(),
            restarts: self.inner.restarts.load(Ordering::Relaxed),
            states: self.inner.states.lock().expect("session states").len(),
        }
    }

    /// Write `state` to a pickle file in its REPL's sandbox and return the
    /// file's bytes.
    pub async fn pickle(&self, state: StateId) -> Result<Vec<u8>, SessionError> {
        self.check_open()?;
        let (mut slot, place) = self.lock_place(state).await?;
        let name = pickle_name();
        let request = Request::PickleProofState {
            pickle_to: name.clone(),
            proof_state: place.proof_state,
        };
        match self.send(&mut slot, place.slot, &request).await? {
            Reply::ProofStep(_) => {}
            Reply::Command(_) => {
                return Err(SessionError::Pickle(
                    "the repl answered a pickle with a command reply".into(),
                ))
            }
            Reply::Error { message } => return Err(SessionError::Pickle(message)),
        }
        let scratch = slot
            .repl
            .as_ref()
            .map(|repl| repl.scratch_dir().to_path_buf())
            .ok_or(SessionError::StateLost(state))?;
        crate::replay::take_pickle(&scratch, &name).map_err(SessionError::Pickle)
    }

    /// Restore a pickled state (from this session or another one opened on
    /// the same header) into this session's least busy REPL, as a new
    /// state with `origin`.
    pub async fn unpickle(
        &self,
        bytes: &[u8],
        origin: StateOrigin,
    ) -> Result<ProofState, SessionError> {
        self.check_open()?;
        if origin.root >= self.inner.sites.len() {
            return Err(SessionError::Pickle(format!(
                "the session has no root {}",
                origin.root
            )));
        }
        let candidates: Vec<Place> = (0..self.inner.slots.len())
            .map(|slot| Place {
                slot,
                generation: self.inner.status[slot].generation.load(Ordering::Acquire),
                proof_state: 0,
            })
            .collect();
        let (mut slot, at) = match self.lock_any(&candidates).await {
            Ok(found) => found,
            // No REPL left: start one again (the opening re-run).
            Err(SessionError::Lost) => self.restore_root(0).await?,
            Err(error) => return Err(error),
        };
        let proof_state = self.unpickle_into(&mut slot, at.slot, bytes).await?;
        drop(slot);
        let (proof_state, goals) = proof_state;
        let mut states = self.inner.states.lock().expect("session states");
        let id = states.len() as StateId;
        states.push(StateRecord {
            messages: Vec::new(),
            parent: None,
            origin,
            goals: goals.clone(),
            proved: false,
            places: vec![Place { proof_state, ..at }],
        });
        Ok(ProofState { id, goals })
    }

    /// Copy `state` into every live REPL of the session that lacks it (by
    /// pickling it once); returns how many REPLs hold it now.
    pub async fn widen(&self, state: StateId) -> Result<usize, SessionError> {
        let bytes = self.pickle(state).await?;
        for index in 0..self.inner.slots.len() {
            let held = {
                let states = self.inner.states.lock().expect("session states");
                states[state as usize]
                    .places
                    .iter()
                    .any(|place| place.slot == index && self.is_live(place))
            };
            if held {
                continue;
            }
            let mut slot = self.inner.slots[index].lock().await;
            if slot.repl.is_none() {
                continue;
            }
            let generation = slot.generation;
            let (proof_state, _) = self.unpickle_into(&mut slot, index, &bytes).await?;
            let mut states = self.inner.states.lock().expect("session states");
            states[state as usize].places.push(Place {
                slot: index,
                generation,
                proof_state,
            });
        }
        let states = self.inner.states.lock().expect("session states");
        Ok(states[state as usize]
            .places
            .iter()
            .filter(|place| self.is_live(place))
            .count())
    }

    /// The source of a proof: the opening with the tactics of `chain` (a
    /// root, each next state made from the one before, the last proved) in
    /// place of the root's `sorry`, header included. Check it through the
    /// ordinary check path; nothing here is a verdict.
    pub fn assemble_proof(&self, chain: &[StateId]) -> Result<String, SessionError> {
        self.assemble_proofs(&[chain.to_vec()])
    }

    /// `assemble_proof` for several roots of a snippet at once, each chain
    /// proving its own root; a root with no chain keeps its `sorry`.
    pub fn assemble_proofs(&self, chains: &[Vec<StateId>]) -> Result<String, SessionError> {
        let mut proofs: Vec<(usize, Vec<String>)> = Vec::new();
        {
            let states = self.inner.states.lock().expect("session states");
            for chain in chains {
                let (root, tactics) = proved_chain(&states, chain)?;
                if proofs.iter().any(|(seen, _)| *seen == root) {
                    return Err(SessionError::BadChain(format!(
                        "two chains prove root {root}"
                    )));
                }
                proofs.push((root, tactics));
            }
        }
        let text = &self.inner.text;
        let body = match &text.theorem {
            Some(theorem) => {
                let (_, tactics) = &proofs[0];
                format!("{}\n{}", theorem.head, tactic_block(tactics, "  "))
            }
            None => {
                let mut body = text.body.clone();
                // Replace from the last site back, so earlier offsets hold.
                proofs.sort_by_key(|(root, _)| std::cmp::Reverse(*root));
                for (root, tactics) in &proofs {
                    let site = &self.inner.sites[*root];
                    body = replace_sorry(&body, site, tactics);
                }
                body
            }
        };
        Ok(if text.header.trim().is_empty() {
            body
        } else {
            format!("{}\n{body}", text.header.trim_end())
        })
    }

    /// Kill the session's REPLs; later calls answer `Closed`.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        for (index, slot) in self.inner.slots.iter().enumerate() {
            let repl = slot.lock().await.repl.take();
            self.inner.status[index]
                .alive
                .store(false, Ordering::Release);
            if let Some(repl) = repl {
                self.inner.driver.inner.session_repls.release(1);
                repl.kill().await;
            }
        }
    }

    /// How long since a call last used the session (opening counts), so
    /// that its holder can close it after an idle timeout.
    pub fn idle_for(&self) -> Duration {
        self.inner
            .last_used
            .lock()
            .expect("session clock")
            .elapsed()
    }

    /// `Closed` once the session is closed; otherwise marks it used now.
    fn check_open(&self) -> Result<(), SessionError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SessionError::Closed);
        }
        *self.inner.last_used.lock().expect("session clock") = Instant::now();
        Ok(())
    }

    /// Whether a live REPL holds this place (read without waiting).
    fn is_live(&self, place: &Place) -> bool {
        let status = &self.inner.status[place.slot];
        status.alive.load(Ordering::Acquire)
            && status.generation.load(Ordering::Acquire) == place.generation
    }

    /// Lock a live REPL that holds `state`: a free one if there is one,
    /// else the first to become free. When none holds it any more, a lost
    /// REPL is started again and the state rebuilt in it (`restore`).
    async fn lock_place(
        &self,
        state: StateId,
    ) -> Result<(tokio::sync::MutexGuard<'_, Slot>, Place), SessionError> {
        let places = {
            let states = self.inner.states.lock().expect("session states");
            states
                .get(state as usize)
                .ok_or(SessionError::UnknownState(state))?
                .places
                .clone()
        };
        match self.lock_any(&places).await {
            Err(SessionError::Lost) => self.restore(state).await,
            other => other,
        }
    }

    /// Lock the REPL of one live place among `candidates`: a free one if
    /// any, else the first live one when it is free. `Lost` if none is live.
    async fn lock_any(
        &self,
        candidates: &[Place],
    ) -> Result<(tokio::sync::MutexGuard<'_, Slot>, Place), SessionError> {
        let holds =
            |slot: &Slot, place: &Place| slot.repl.is_some() && slot.generation == place.generation;
        for place in candidates {
            if let Ok(guard) = self.inner.slots[place.slot].try_lock() {
                if holds(&guard, place) {
                    return Ok((guard, *place));
                }
            }
        }
        // All busy: wait for whichever becomes free first (a batch larger
        // than the session's REPLs queues on all of them, not on one).
        loop {
            let live: Vec<Place> = candidates
                .iter()
                .filter(|place| self.is_live(place))
                .copied()
                .collect();
            if live.is_empty() {
                break;
            }
            let locks = live.into_iter().map(|place| {
                Box::pin(async move { (self.inner.slots[place.slot].lock().await, place) })
            });
            let ((guard, place), _, _) = futures::future::select_all(locks).await;
            if holds(&guard, &place) {
                return Ok((guard, place));
            }
            // That REPL was lost while this waited (its status says so now).
        }
        self.check_open()?;
        Err(SessionError::Lost)
    }

    /// Rebuild `state` in a REPL started again in a lost slot: the opening
    /// is elaborated again and the tactics that led to the state are
    /// replayed (what re-running costs; a pickle kept elsewhere can be
    /// unpickled instead).
    async fn restore(
        &self,
        state: StateId,
    ) -> Result<(tokio::sync::MutexGuard<'_, Slot>, Place), SessionError> {
        let origin = self.origin(state)?;
        let (mut slot, root) = self.restore_root(origin.root).await?;
        let mut proof_state = root.proof_state;
        for tactic in &origin.tactics {
            let request = Request::Tactic(TacticRequest {
                tactic: tactic.clone(),
                proof_state,
            });
            match self.send(&mut slot, root.slot, &request).await? {
                Reply::ProofStep(step)
                    if !step
                        .messages
                        .iter()
                        .any(|message| message.severity == Severity::Error) =>
                {
                    proof_state = step.proof_state
                }
                _ => return Err(SessionError::StateLost(state)),
            }
        }
        let place = Place {
            proof_state,
            ..root
        };
        let mut states = self.inner.states.lock().expect("session states");
        states[state as usize].places.push(place);
        Ok((slot, place))
    }

    /// Start a REPL again in a lost slot and elaborate the opening in it;
    /// every root gets a place there. Returns the slot and `root`'s place.
    async fn restore_root(
        &self,
        root: usize,
    ) -> Result<(tokio::sync::MutexGuard<'_, Slot>, Place), SessionError> {
        self.check_open()?;
        for (index, slot) in self.inner.slots.iter().enumerate() {
            if self.inner.status[index].alive.load(Ordering::Acquire) {
                continue;
            }
            let mut guard = slot.lock().await;
            if guard.repl.is_some() {
                continue;
            }
            self.check_open()?;
            self.inner.driver.inner.session_repls.reserve(1)?;
            let started = self
                .inner
                .driver
                .session_repl(&self.inner.text, self.inner.open_timeout)
                .await;
            let (repl, reply) = match started {
                Ok(started) => started,
                Err(error) => {
                    self.inner.driver.inner.session_repls.release(1);
                    return Err(error);
                }
            };
            if reply.sorries.len() != self.inner.sites.len() {
                self.inner.driver.inner.session_repls.release(1);
                tokio::spawn(repl.kill());
                return Err(SessionError::Driver(DriverError::Toolchain(
                    "a restarted repl disagrees on the opening's proof states".into(),
                )));
            }
            guard.generation += 1;
            guard.repl = Some(repl);
            let generation = guard.generation;
            let status = &self.inner.status[index];
            status.generation.store(generation, Ordering::Release);
            status.alive.store(true, Ordering::Release);
            self.inner.restarts.fetch_add(1, Ordering::Relaxed);
            let mut found = None;
            let mut states = self.inner.states.lock().expect("session states");
            for (position, sorry) in reply.sorries.iter().enumerate() {
                let place = Place {
                    slot: index,
                    generation,
                    proof_state: sorry.proof_state.unwrap_or(0),
                };
                // The opening's roots are the first states, in order.
                states[position].places.push(place);
                if position == root {
                    found = Some(place);
                }
            }
            drop(states);
            let place = found.ok_or(SessionError::Lost)?;
            return Ok((guard, place));
        }
        Err(SessionError::Lost)
    }

    /// Send one request to a locked REPL; a REPL that fails is killed and
    /// its slot marked lost.
    async fn send(
        &self,
        slot: &mut Slot,
        index: usize,
        request: &Request,
    ) -> Result<Reply, SessionError> {
        let Some(repl) = slot.repl.as_mut() else {
            return Err(SessionError::Lost);
        };
        let deadline = Instant::now() + self.inner.tactic_timeout;
        match repl.send(request, deadline).await {
            Ok(reply) => Ok(reply),
            Err(failure) => {
                let repl = slot.repl.take().expect("the slot held a repl");
                self.inner.status[index]
                    .alive
                    .store(false, Ordering::Release);
                self.inner.driver.inner.session_repls.release(1);
                let report = repl.kill().await;
                let reason = match failure {
                    ReplFailure::Timeout if !report.oom_killed => VerdictReason::new(
                        ReasonCode::Timeout,
                        format!(
                            "the tactic did not finish within {} s",
                            self.inner.tactic_timeout.as_secs_f64()
                        ),
                    ),
                    failure => {
                        failure_reason(&failure, &report, self.inner.tactic_timeout.as_secs_f64())
                    }
                };
                tracing::info!(reason = %reason.message, "a session's repl was lost");
                Err(SessionError::ReplLost { reason })
            }
        }
    }

    async fn unpickle_into(
        &self,
        slot: &mut Slot,
        index: usize,
        bytes: &[u8],
    ) -> Result<(u64, Vec<String>), SessionError> {
        let scratch = slot
            .repl
            .as_ref()
            .map(|repl| repl.scratch_dir().to_path_buf())
            .ok_or(SessionError::Lost)?;
        let name = pickle_name();
        crate::replay::put_pickle(&scratch, &name, bytes)
            .map_err(|error| SessionError::Pickle(error.to_string()))?;
        let request = Request::UnpickleProofState {
            unpickle_proof_state_from: name.clone(),
        };
        let reply = self.send(slot, index, &request).await;
        let _ = std::fs::remove_file(scratch.join(&name));
        match reply? {
            Reply::ProofStep(step) => Ok((step.proof_state, step.goals)),
            Reply::Command(_) => Err(SessionError::Pickle(
                "the repl answered an unpickle with a command reply".into(),
            )),
            Reply::Error { message } => Err(SessionError::Pickle(message)),
        }
    }

    /// Turn a REPL's answer to a tactic on `parent` into an outcome,
    /// recording the new state.
    fn record(&self, parent: StateId, at: Place, tactic: &str, reply: Reply) -> TacticOutcome {
        let step: ProofStepReply = match reply {
            Reply::ProofStep(step) => step,
            Reply::Error { message } => {
                return TacticOutcome::Error {
                    messages: vec![lean_error(message)],
                    status: None,
                }
            }
            Reply::Command(_) => {
                return TacticOutcome::Error {
                    messages: vec![lean_error(
                        "the repl answered a tactic with a command reply".into(),
                    )],
                    status: None,
                }
            }
        };
        let messages = shift_messages(&step.messages, 0);
        let failed = step
            .messages
            .iter()
            .any(|message| message.severity == Severity::Error)
            || step
                .proof_status
                .as_deref()
                .is_some_and(|status| status.starts_with("Error"));
        let proved = step.goals.is_empty() && step.proof_status.as_deref() == Some("Completed");
        if failed || (step.goals.is_empty() && !proved) {
            return TacticOutcome::Error {
                messages,
                status: step.proof_status,
            };
        }
        let mut states = self.inner.states.lock().expect("session states");
        let mut origin = states[parent as usize].origin.clone();
        origin.tactics.push(tactic.to_string());
        let id = states.len() as StateId;
        states.push(StateRecord {
            messages,
            parent: Some(parent),
            origin,
            goals: step.goals.clone(),
            proved,
            places: vec![Place {
                proof_state: step.proof_state,
                ..at
            }],
        });
        if proved {
            TacticOutcome::Proved { state: id }
        } else {
            TacticOutcome::Open {
                state: id,
                goals: step.goals,
            }
        }
    }
}

fn screen_tactic(tactic: &str, policy: &Policy) -> Option<VerdictReason> {
    if tactic.len() > MAX_TACTIC_BYTES {
        return Some(VerdictReason::new(
            ReasonCode::LeanError,
            format!("the tactic is longer than {MAX_TACTIC_BYTES} bytes"),
        ));
    }
    screen::screen_tactic(tactic, policy)
}

/// Lean's `{"message"}` answer to a tactic, as a message.
fn lean_error(data: String) -> VerdictMessage {
    VerdictMessage {
        severity: leanfarm_core::Severity::Error,
        line: 0,
        column: 0,
        end_line: None,
        end_column: None,
        data,
    }
}

/// A fresh file name for one pickle (never one a tactic could guess).
fn pickle_name() -> String {
    format!("leanfarm-state-{}.olean", &crate::audit::new_nonce()[..16])
}

/// The root and tactics of a chain that is a proof.
fn proved_chain(
    states: &[StateRecord],
    chain: &[StateId],
) -> Result<(usize, Vec<String>), SessionError> {
    let record = |id: StateId| {
        states
            .get(id as usize)
            .ok_or(SessionError::UnknownState(id))
    };
    let (&first, rest) = chain
        .split_first()
        .ok_or_else(|| SessionError::BadChain("the chain is empty".into()))?;
    let first_record = record(first)?;
    let mut previous = first;
    for &id in rest {
        if record(id)?.parent != Some(previous) {
            return Err(SessionError::BadChain(format!(
                "state {id} was not made from state {previous}"
            )));
        }
        previous = id;
    }
    let last = record(previous)?;
    if !last.proved {
        return Err(SessionError::BadChain(format!(
            "state {previous} is not proved"
        )));
    }
    // The chain may start at an unpickled state; its origin says how it
    // was reached from the root.
    let start = first_record.origin.tactics.len();
    if last.origin.tactics.len() < start
        || last.origin.tactics[..start] != first_record.origin.tactics[..]
    {
        return Err(SessionError::BadChain(format!(
            "state {previous} does not grow from state {first}"
        )));
    }
    Ok((last.origin.root, last.origin.tactics.clone()))
}

/// Tactics as the lines of a `by` block at `indent`.
fn tactic_block(tactics: &[String], indent: &str) -> String {
    tactics
        .iter()
        .flat_map(|tactic| tactic.lines())
        .map(|line| format!("{indent}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Byte offset of (line, column in code points) in `text`.
fn offset_of(text: &str, (line, column): (u32, u32)) -> usize {
    let mut offset = 0;
    for (index, text_line) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line as usize {
            let within = text_line
                .char_indices()
                .nth(column as usize)
                .map_or(text_line.len(), |(at, _)| at);
            return offset + within;
        }
        offset += text_line.len();
    }
    text.len()
}

/// Replace the `sorry` at `site` with a `by` block of `tactics`: `(by ...)`
/// where a term stands (after `:=`, `(`, `,`, `⟨`, `exact`, `from`),
/// `exact (by ...)` where a tactic does.
fn replace_sorry(body: &str, site: &Site, tactics: &[String]) -> String {
    let start = offset_of(body, site.start);
    let end = offset_of(body, site.end).max(start);
    let before = body[..start].trim_end();
    let term_position = [":=", "(", ",", "⟨", "exact", "from"]
        .iter()
        .any(|token| before.ends_with(token));
    let line_start = body[..start].rfind('\n').map_or(0, |at| at + 1);
    let line_indent = body[line_start..].chars().take_while(|c| *c == ' ').count();
    let indent = " ".repeat(line_indent + 4);
    let block = format!("(by\n{})", tactic_block(tactics, &indent));
    let replacement = if term_position {
        block
    } else {
        format!("exact {block}")
    };
    format!("{}{replacement}{}", &body[..start], &body[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sorry_is_replaced_as_a_term_or_as_a_tactic() {
        let site = |line, column| Site {
            start: (line, column),
            end: (line, column + 5),
        };
        let tactics = vec!["intro h".to_string(), "exact h".to_string()];
        assert_eq!(
            replace_sorry("theorem t : p → p := sorry", &site(1, 21), &tactics),
            "theorem t : p → p := (by\n    intro h\n    exact h)"
        );
        assert_eq!(
            replace_sorry("theorem t : p → p := by\n  sorry", &site(2, 2), &tactics),
            "theorem t : p → p := by\n  exact (by\n      intro h\n      exact h)"
        );
        // Code points, not bytes, count columns.
        assert_eq!(
            replace_sorry("theorem t : α → α := sorry", &site(1, 21), &tactics[..1]),
            "theorem t : α → α := (by\n    intro h)"
        );
    }
}
