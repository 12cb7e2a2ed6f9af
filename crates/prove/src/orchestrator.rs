//! The proof-search loop: rounds of candidates from a model route, each
//! checked through the farm, until one is valid, a budget runs out, or the
//! strategy's rounds are over.
//!
//! Round 0 checks the statement alone (`STATEMENT := sorry`): a statement
//! that does not elaborate ends the job as `failed`, before any model call.
//!
//! Durability: every attempt is recorded (with the id its check will have)
//! before its check is submitted, and `run` starts from the recorded
//! attempts, so a job resumed after a crash never asks the model again for
//! a recorded candidate and never submits a check twice (submitting an id
//! that exists is a no-op in `Farm::submit_check`).

use crate::gateway::{Gateway, GatewayError, ModelCall};
use crate::prompt::{self, Feedback};
use crate::request::{Outcome, ProveRequest, StrategyKind, Usage};
use crate::PremiseSource;
use leanfarm_core::{CheckRequest, CheckStatus, Severity, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// One candidate (or, in round 0, the statement check) and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub round: u32,
    pub candidate: u32,
    pub route: String,
    pub model: String,
    /// Model tokens of this candidate's call.
    pub tokens: u64,
    pub cost: f64,
    /// The id of its check (`GET /v1/checks/{id}`).
    pub check_id: String,
    /// The model's proof (what follows `:=`).
    pub proof: String,
    /// `None` until the check has its verdict.
    pub verdict: Option<Verdict>,
    /// From the model call to the verdict, in milliseconds.
    pub time_ms: u64,
    /// Lean time of the check, in seconds (the verdict's timings).
    pub lean_seconds: f64,
}

impl Attempt {
    fn is_valid(&self) -> bool {
        self.verdict.as_ref().is_some_and(Verdict::is_valid)
    }
}

/// What the tenant may still spend today; `None`: no cap.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantAllowance {
    pub tokens_left: Option<u64>,
    pub cost_left: Option<f64>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FarmError {
    /// The farm cannot take the check now (a queue is full): try again later.
    #[error("the farm is busy: {0}")]
    Busy(String),
    /// The farm refuses the check: trying again would not help.
    #[error("the farm refused the check: {0}")]
    Refused(String),
    #[error("the store failed: {0}")]
    Store(String),
}

/// The farm as the orchestrator sees it. The server implements it on its
/// store and its ordinary check path.
pub trait Farm: Send + Sync {
    /// The job's recorded attempts.
    fn attempts(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<Attempt>, FarmError>> + Send;
    /// Record a new attempt unless one with its round and candidate is
    /// recorded; returns the recorded one and whether it is this one.
    fn record_attempt(
        &self,
        job_id: &str,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<(Attempt, bool), FarmError>> + Send;
    /// Store an attempt's verdict and times.
    fn update_attempt(
        &self,
        job_id: &str,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<(), FarmError>> + Send;
    /// Submit a check with this id as the tenant, through the ordinary
    /// check path; a check with this id that exists already is left alone.
    fn submit_check(
        &self,
        tenant: &str,
        check_id: &str,
        request: CheckRequest,
    ) -> impl Future<Output = Result<(), FarmError>> + Send;
    /// The check's verdict, waiting up to `wait` for it.
    fn wait_verdict(
        &self,
        check_id: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<Verdict>, FarmError>> + Send;
    fn allowance(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<TenantAllowance, FarmError>> + Send;
    /// Add a model call's tokens and cost to the tenant's day.
    fn charge(
        &self,
        tenant: &str,
        tokens: u64,
        cost: f64,
    ) -> impl Future<Output = Result<(), FarmError>> + Send;
    /// The job's usage after a round (for readers and the event stream).
    fn progress(
        &self,
        job_id: &str,
        usage: &Usage,
    ) -> impl Future<Output = Result<(), FarmError>> + Send;
}

/// The job being driven.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub job_id: String,
    pub tenant: String,
    pub request: ProveRequest,
    /// When the job was submitted (Unix milliseconds): the wall budget counts from it.
    pub created_at_millis: i64,
    /// The id of the process driving it now (for logs).
    pub session_id: String,
}

/// How often a wait for a verdict comes back to look at the clock.
const VERDICT_POLL: Duration = Duration::from_secs(2);
/// How long a busy farm is given before a submission is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(500);

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The usage the recorded attempts add up to.
pub fn usage_of(attempts: &[Attempt], created_at_millis: i64) -> Usage {
    let mut usage = Usage::default();
    for attempt in attempts.iter().filter(|attempt| attempt.round > 0) {
        usage.candidates += 1;
        usage.tokens += attempt.tokens;
        usage.cost += attempt.cost;
    }
    for attempt in attempts {
        usage.cpu_seconds += attempt.lean_seconds;
    }
    usage.wall_seconds = ((now_millis() - created_at_millis).max(0) as f64) / 1000.0;
    usage
}

/// Drive the job to its outcome.
pub async fn run<F: Farm>(
    farm: &F,
    gateway: &Gateway,
    premises: Option<&dyn PremiseSource>,
    job: &JobContext,
) -> Outcome {
    let budget = job.request.budget;
    let elapsed = Duration::from_millis((now_millis() - job.created_at_millis).max(0) as u64);
    let wall = Duration::from_secs_f64(budget.wall_seconds);
    let Some(left) = wall.checked_sub(elapsed) else {
        return wall_exhausted(budget.wall_seconds);
    };
    match tokio::time::timeout(left, drive(farm, gateway, premises, job)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::Failed {
            reason: error.to_string(),
        },
        Err(_elapsed) => wall_exhausted(budget.wall_seconds),
    }
}

fn wall_exhausted(seconds: f64) -> Outcome {
    Outcome::Exhausted {
        reason: format!("budget.wall_seconds: the job ran for its {seconds} s"),
    }
}

#[derive(Debug, thiserror::Error)]
enum DriveError {
    #[error(transparent)]
    Farm(#[from] FarmError),
    #[error(transparent)]
    Model(#[from] GatewayError),
}

struct Driver<'a, F> {
    farm: &'a F,
    gateway: &'a Gateway,
    job: &'a JobContext,
    recorded: BTreeMap<(u32, u32), Attempt>,
}

async fn drive<F: Farm>(
    farm: &F,
    gateway: &Gateway,
    premises: Option<&dyn PremiseSource>,
    job: &JobContext,
) -> Result<Outcome, DriveError> {
    let request = &job.request;
    if !gateway.has_route(&request.route) {
        return Err(GatewayError::UnknownRoute(request.route.clone()).into());
    }
    let recorded = farm
        .attempts(&job.job_id)
        .await?
        .into_iter()
        .map(|attempt| ((attempt.round, attempt.candidate), attempt))
        .collect();
    let driver = Driver {
        farm,
        gateway,
        job,
        recorded,
    };
    if let Some(failed) = driver.check_statement().await? {
        return Ok(failed);
    }
    if let Some(valid) = driver
        .recorded
        .values()
        .find(|attempt| attempt.round > 0 && attempt.is_valid())
    {
        return Ok(proved(request, valid));
    }
    let premises: Vec<crate::Premise> = match (premises, &request.premises) {
        (Some(source), Some(wanted)) if wanted.k > 0 => source.search(&request.statement, wanted.k),
        _ => Vec::new(),
    };
    let strategy = request.strategy;
    let mut feedback: BTreeMap<u32, Vec<Feedback>> = BTreeMap::new();
    let mut driver = driver;
    for round in 1..=strategy.rounds {
        let all: Vec<Attempt> = driver.recorded.values().cloned().collect();
        let usage = usage_of(&all, job.created_at_millis);
        if let Some(exhausted) = driver.budget_left(&usage).await? {
            return Ok(exhausted);
        }
        let candidates_left = request.budget.candidates - usage.candidates;
        let count = (strategy.n as u64).min(candidates_left) as u32;
        let tokens_left = request.budget.tokens - usage.tokens;
        let allowance = farm.allowance(&job.tenant).await?;
        let tokens_left = allowance
            .tokens_left
            .map_or(tokens_left, |tenant| tenant.min(tokens_left));
        let max_tokens = (tokens_left / count as u64).max(1);
        let slots = (1..=count).map(|candidate| {
            let earlier = match strategy.kind {
                StrategyKind::Refine => feedback.get(&candidate).cloned().unwrap_or_default(),
                StrategyKind::Sample => Vec::new(),
            };
            let messages = prompt::messages(request, &premises, &earlier);
            let attempt_number = (round as u64 - 1) * strategy.n as u64 + candidate as u64;
            driver.slot(round, candidate, messages, max_tokens, attempt_number)
        });
        let results = futures::future::join_all(slots).await;
        let mut model_error = None;
        for result in results {
            match result {
                Ok(attempt) => {
                    driver
                        .recorded
                        .insert((attempt.round, attempt.candidate), attempt);
                }
                Err(DriveError::Model(error)) => model_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        let all: Vec<Attempt> = driver.recorded.values().cloned().collect();
        farm.progress(&job.job_id, &usage_of(&all, job.created_at_millis))
            .await?;
        let mut round_attempts: Vec<&Attempt> = driver
            .recorded
            .values()
            .filter(|attempt| attempt.round == round)
            .collect();
        round_attempts.sort_by_key(|attempt| attempt.candidate);
        if let Some(valid) = round_attempts.iter().find(|attempt| attempt.is_valid()) {
            return Ok(proved(request, valid));
        }
        if let Some(error) = model_error {
            return Err(error.into());
        }
        for attempt in round_attempts {
            feedback
                .entry(attempt.candidate)
                .or_default()
                .push(Feedback {
                    proof: attempt.proof.clone(),
                    lean_said: lean_said(attempt.verdict.as_ref()),
                });
        }
    }
    Ok(Outcome::Exhausted {
        reason: format!(
            "strategy.rounds: {} rounds found no valid candidate",
            strategy.rounds
        ),
    })
}

fn proved(request: &ProveRequest, attempt: &Attempt) -> Outcome {
    Outcome::Proved {
        proof: prompt::candidate_code(request, &attempt.proof),
        reason: None,
    }
}

/// What refine tells the model about a failed candidate.
fn lean_said(verdict: Option<&Verdict>) -> String {
    let Some(verdict) = verdict else {
        return "no verdict".to_string();
    };
    let errors: Vec<String> = verdict
        .messages
        .iter()
        .filter(|message| message.severity == Severity::Error)
        .take(5)
        .map(|message| {
            format!(
                "{}:{}: error: {}",
                message.line, message.column, message.data
            )
        })
        .collect();
    if !errors.is_empty() {
        return errors.join("\n");
    }
    verdict.reason().map_or_else(
        || "no reason".to_string(),
        |reason| format!("{}: {}", reason.code, reason.message),
    )
}

impl<F: Farm> Driver<'_, F> {
    fn check_request(&self, proof: &str, pinned: bool) -> CheckRequest {
        let request = &self.job.request;
        let mut policy = request.policy.clone();
        policy.pinned = if pinned { request.pinned().ok() } else { None };
        CheckRequest {
            custom_id: None,
            code: prompt::candidate_code(request, proof),
            timeout_seconds: request.timeout_seconds,
            policy,
            infotree: None,
            trace_context: None,
        }
    }

    /// Round 0: `STATEMENT := sorry` must elaborate (a `sorry` verdict);
    /// a Lean error ends the job as `failed`.
    async fn check_statement(&self) -> Result<Option<Outcome>, DriveError> {
        let attempt = match self.recorded.get(&(0, 0)) {
            Some(attempt) => attempt.clone(),
            None => {
                let attempt = Attempt {
                    round: 0,
                    candidate: 0,
                    route: String::new(),
                    model: String::new(),
                    tokens: 0,
                    cost: 0.0,
                    check_id: uuid::Uuid::now_v7().to_string(),
                    proof: "sorry".to_string(),
                    verdict: None,
                    time_ms: 0,
                    lean_seconds: 0.0,
                };
                self.farm
                    .record_attempt(&self.job.job_id, &attempt)
                    .await?
                    .0
            }
        };
        let attempt = self
            .finish_check(attempt, self.check_request("sorry", false), Instant::now())
            .await?;
        let verdict = attempt
            .verdict
            .as_ref()
            .expect("a finished check has its verdict");
        if verdict.status() == CheckStatus::LeanError {
            return Ok(Some(Outcome::Failed {
                reason: format!(
                    "the statement does not elaborate: {}",
                    lean_said(Some(verdict)).replace('\n', "; ")
                ),
            }));
        }
        Ok(None)
    }

    /// Why the next round may not start, if it may not.
    async fn budget_left(&self, usage: &Usage) -> Result<Option<Outcome>, DriveError> {
        let budget = self.job.request.budget;
        let exhausted = |reason: String| Ok(Some(Outcome::Exhausted { reason }));
        if usage.candidates >= budget.candidates {
            return exhausted(format!(
                "budget.candidates: {} candidates were tried",
                usage.candidates
            ));
        }
        if usage.tokens >= budget.tokens {
            return exhausted(format!(
                "budget.tokens: {} of {} tokens used",
                usage.tokens, budget.tokens
            ));
        }
        if usage.cpu_seconds >= budget.cpu_seconds {
            return exhausted(format!(
                "budget.cpu_seconds: {:.3} of {} Lean seconds used",
                usage.cpu_seconds, budget.cpu_seconds
            ));
        }
        let allowance = self.farm.allowance(&self.job.tenant).await?;
        if allowance.tokens_left == Some(0) {
            return exhausted(format!(
                "tenant daily tokens: tenant `{}` has no tokens left today",
                self.job.tenant
            ));
        }
        if allowance.cost_left.is_some_and(|cost| cost <= 0.0) {
            return exhausted(format!(
                "tenant daily cost: tenant `{}` has no cost left today",
                self.job.tenant
            ));
        }
        Ok(None)
    }

    /// One candidate: the recorded one if there is one, else a new model call.
    async fn slot(
        &self,
        round: u32,
        candidate: u32,
        messages: Vec<crate::gateway::ChatMessage>,
        max_tokens: u64,
        attempt_number: u64,
    ) -> Result<Attempt, DriveError> {
        let started = Instant::now();
        let attempt = match self.recorded.get(&(round, candidate)) {
            Some(recorded) => recorded.clone(),
            None => {
                let request = &self.job.request;
                let call = ModelCall {
                    messages,
                    max_tokens: Some(max_tokens),
                    attempt_number,
                };
                let reply = match self.gateway.complete(&request.route, &call).await {
                    Ok(reply) => reply,
                    Err(error) => {
                        tracing::warn!(job_id = %self.job.job_id, session_id = %self.job.session_id, round, candidate, route = %request.route, error_class = error.class(), %error, "model call failed");
                        return Err(error.into());
                    }
                };
                let attempt = Attempt {
                    round,
                    candidate,
                    route: request.route.clone(),
                    model: reply.model.clone(),
                    tokens: reply.tokens(),
                    cost: reply.cost,
                    check_id: uuid::Uuid::now_v7().to_string(),
                    proof: prompt::extract_proof(&reply.text, &request.statement),
                    verdict: None,
                    time_ms: 0,
                    lean_seconds: 0.0,
                };
                let (recorded, ours) = self.farm.record_attempt(&self.job.job_id, &attempt).await?;
                if ours {
                    self.farm
                        .charge(&self.job.tenant, attempt.tokens, attempt.cost)
                        .await?;
                }
                recorded
            }
        };
        if attempt.verdict.is_some() {
            return Ok(attempt);
        }
        let check = self.check_request(&attempt.proof, true);
        let attempt = self.finish_check(attempt, check, started).await?;
        self.log_attempt(&attempt);
        Ok(attempt)
    }

    /// Submit the attempt's check (a no-op if it exists) and wait for its verdict.
    async fn finish_check(
        &self,
        mut attempt: Attempt,
        check: CheckRequest,
        started: Instant,
    ) -> Result<Attempt, DriveError> {
        if attempt.verdict.is_some() {
            return Ok(attempt);
        }
        loop {
            match self
                .farm
                .submit_check(&self.job.tenant, &attempt.check_id, check.clone())
                .await
            {
                Ok(()) => break,
                Err(FarmError::Busy(why)) => {
                    tracing::debug!(job_id = %self.job.job_id, %why, "the farm is busy; submitting again soon");
                    tokio::time::sleep(BUSY_RETRY).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let verdict = loop {
            if let Some(verdict) = self
                .farm
                .wait_verdict(&attempt.check_id, VERDICT_POLL)
                .await?
            {
                break verdict;
            }
        };
        let timings = &verdict.timings;
        // Lean's CPU time where the sandbox measures it, else its elapsed time.
        attempt.lean_seconds = if timings.lean_cpu_ms > 0.0 {
            timings.lean_cpu_ms / 1000.0
        } else {
            (timings.header_ms + timings.body_ms + timings.replay_ms) / 1000.0
        };
        attempt.time_ms = started.elapsed().as_millis() as u64;
        attempt.verdict = Some(verdict);
        self.farm.update_attempt(&self.job.job_id, &attempt).await?;
        Ok(attempt)
    }

    fn log_attempt(&self, attempt: &Attempt) {
        let budget = self.job.request.budget;
        let all: Vec<Attempt> = self.recorded.values().cloned().collect();
        let usage = usage_of(&all, self.job.created_at_millis);
        let budget_left = serde_json::json!({
            "candidates": budget.candidates.saturating_sub(usage.candidates + 1),
            "tokens": budget.tokens.saturating_sub(usage.tokens + attempt.tokens),
            "cpu_seconds": (budget.cpu_seconds - usage.cpu_seconds - attempt.lean_seconds).max(0.0),
            "wall_seconds": (budget.wall_seconds - usage.wall_seconds).max(0.0),
        });
        let verdict = attempt.verdict.as_ref();
        let lean_ok = verdict.is_some_and(Verdict::is_valid);
        let error_class = verdict
            .and_then(Verdict::reason)
            .map_or("none", |reason| reason.code.as_str());
        tracing::info!(
            job_id = %self.job.job_id,
            session_id = %self.job.session_id,
            round = attempt.round,
            candidate = attempt.candidate,
            model = %attempt.model,
            tokens = attempt.tokens,
            budget_left = %budget_left,
            lean_ok,
            error_class,
            time_ms = attempt.time_ms,
            check_id = %attempt.check_id,
            "prove attempt"
        );
    }
}
