//! The Lean driver: a pool of warm, sandboxed Lean REPL processes keyed by
//! toolchain, project and import header, and the verdict policy applied to
//! what they answer.
//!
//! This crate knows nothing about HTTP, jobs, tenants or databases: it takes a
//! `CheckRequest` and gives back a `Verdict`.

mod audit;
mod judge;
mod pool;
mod repl;
mod replay;
mod screen;
pub mod session;
mod wire;

use lean_protocol::{Message as ReplMessage, Severity};
use leanfarm_core::{
    repl_header, split_header, CheckRequest, ReasonCode, SplitSnippet, Verdict, VerdictMessage,
    VerdictReason,
};
use leanfarm_sandbox::{ExitReport, Sandbox, SandboxError};
use pool::Pool;
use repl::{Repl, ReplFailure};
pub use session::{
    OpenRequest, Opened, Opening, ProofState, Session, SessionError, SessionUsage, StateId,
    StateOrigin, StateSummary, TacticOutcome,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::CommandReply;

/// Which Lean to run and against which project.
#[derive(Clone, Debug)]
pub struct ToolchainConfig {
    /// Name reported in every verdict, e.g. `leanprover/lean4:v4.19.0` or `lean-sim`.
    pub name: String,
    /// The REPL program as seen inside the sandbox, and its arguments.
    pub repl_program: PathBuf,
    pub repl_args: Vec<String>,
    /// Name of the Lean project reported in verdicts.
    pub project_name: String,
    /// Extra environment for the REPL (e.g. `LEAN_PATH`).
    pub env: Vec<(String, String)>,
}

/// Sizing of the warm pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Checks that run at once.
    pub slots: usize,
    /// Most REPL processes alive at once, busy or warm and idle; raised to
    /// `slots` if lower. Room beyond `slots` keeps more headers warm.
    pub max_repls: usize,
    /// A REPL is retired after this many snippets.
    pub max_uses_per_repl: u32,
    /// A REPL is retired, before it takes another snippet, once its
    /// process tree's memory (the cgroup's current usage) passes this
    /// fraction of the sandbox's memory limit: a REPL keeps every
    /// environment it has made, and its growth must not land on the next
    /// snippet as an out-of-memory verdict.
    pub recycle_memory_fraction: f64,
    /// How long `check` waits for a free slot before answering `Busy`.
    pub acquire_timeout: Duration,
    /// Headers to start REPLs for before the first request.
    pub prestart_headers: Vec<String>,
    /// Largest reply accepted from a REPL; a larger one is an error.
    pub max_reply_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            slots: 2,
            max_repls: 2,
            max_uses_per_repl: 500,
            recycle_memory_fraction: 0.75,
            acquire_timeout: Duration::from_secs(30),
            prestart_headers: Vec::new(),
            max_reply_bytes: 16 << 20,
        }
    }
}

/// A failure of the farm, not of the snippet: the caller should retry the job.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("no repl slot became free within {0:?}")]
    Busy(Duration),
    #[error("failed to start repl")]
    Sandbox(#[from] SandboxError),
    /// The configured toolchain does not behave like Lean's REPL.
    #[error("toolchain failure: {0}")]
    Toolchain(String),
}

/// Counters of the warm pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Snippets that found a warm REPL with their header.
    pub hits: u64,
    /// Snippets that had to start a REPL.
    pub misses: u64,
    /// Idle REPLs dropped to make room (the one least in demand).
    pub evictions: u64,
    /// REPLs replaced after a timeout, crash, memory or use cap.
    pub restarts: u64,
    /// REPLs retired after `max_uses_per_repl` snippets.
    pub recycled_for_uses: u64,
    /// REPLs retired when their memory passed `recycle_memory_fraction`.
    pub recycled_for_memory: u64,
    /// REPLs retired because a snippet left a process running.
    pub recycled_for_processes: u64,
    /// Snippets that ran out of memory on a reused REPL and were run again
    /// on a fresh one.
    pub out_of_memory_retries: u64,
    /// CPU time the snippets' REPL process trees used (cgroup accounting),
    /// in microseconds; counted when a REPL comes back from a check.
    pub lean_cpu_micros: u64,
    pub live_repls: u64,
    pub busy_repls: u64,
}

/// The driver. Cheap to clone.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<DriverInner>,
}

struct DriverInner {
    toolchain: ToolchainConfig,
    sandbox: Arc<Sandbox>,
    pool: Arc<Pool>,
    /// Warm REPLs that replay bodies in Lean's kernel (see `replay`).
    replayers: replay::Replayers,
    out_of_memory_retries: std::sync::atomic::AtomicU64,
    /// REPLs held by tactic sessions (outside the pool).
    session_repls: session::SessionRepls,
}

/// How long starting a REPL and importing its header may take.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(300);

impl Driver {
    pub fn new(toolchain: ToolchainConfig, pool: PoolConfig, sandbox: Arc<Sandbox>) -> Driver {
        let recycle_memory_bytes = (sandbox.memory_limit_bytes() as f64
            * pool.recycle_memory_fraction.clamp(0.0, 1.0))
            as u64;
        let max_session_repls = pool.max_repls.max(pool.slots).max(1);
        Driver {
            inner: Arc::new(DriverInner {
                toolchain,
                sandbox,
                pool: Pool::new(pool, recycle_memory_bytes),
                out_of_memory_retries: std::sync::atomic::AtomicU64::new(0),
                replayers: replay::Replayers::default(),
                session_repls: session::SessionRepls::new(max_session_repls),
            }),
        }
    }

    /// Check one snippet. Lean's own failures (errors, timeouts, crashes,
    /// memory) are verdicts; `Err` means the farm could not run the check.
    ///
    /// A snippet that runs out of memory on a reused REPL is run once more
    /// on a fresh one: the REPL may have kept what earlier snippets
    /// allocated. Only a snippet that runs out of memory on its own is
    /// blamed, and its verdict says so. (Timeouts are not retried: a reused
    /// REPL does not make a snippet's own elaboration slower, and a retry
    /// would double the cost of every genuine timeout.)
    pub async fn check(&self, request: &CheckRequest) -> Result<Verdict, DriverError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "driver.check",
            header = %Driver::header_key(&request.code),
            status = tracing::field::Empty,
        );
        let verdict = self
            .check_with_retry(request)
            .instrument(span.clone())
            .await;
        if let Ok(verdict) = &verdict {
            span.record("status", verdict.status().as_str());
        }
        verdict
    }

    /// `check`: once, and again on a fresh REPL after running out of
    /// memory on a reused one.
    async fn check_with_retry(&self, request: &CheckRequest) -> Result<Verdict, DriverError> {
        let verdict = self.check_once(request, false).await?;
        let out_of_memory = verdict
            .reason()
            .is_some_and(|reason| reason.code == ReasonCode::OutOfMemory);
        if !(out_of_memory && verdict.repl_reused) {
            return Ok(verdict);
        }
        self.inner
            .out_of_memory_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("a snippet ran out of memory on a reused repl; running it on a fresh one");
        let mut retried = self.check_once(request, true).await?;
        if let Some(reason) = retried.reason() {
            if reason.code == ReasonCode::OutOfMemory {
                let peak = retried
                    .peak_memory_bytes
                    .map(|bytes| format!(", peaking at {} MiB", bytes >> 20))
                    .unwrap_or_default();
                retried.reject(VerdictReason::new(
                    ReasonCode::OutOfMemory,
                    format!(
                        "the Lean process ran out of memory on a fresh REPL, with this snippet alone{peak} (limit {} MiB)",
                        self.inner.sandbox.memory_limit_bytes() >> 20
                    ),
                ));
            }
        }
        Ok(retried)
    }

    async fn check_once(
        &self,
        request: &CheckRequest,
        fresh: bool,
    ) -> Result<Verdict, DriverError> {
        let check_started = Instant::now();
        let snippet = split_header(&request.code);
        let mut verdict = Verdict::valid();
        verdict.toolchain = self.inner.toolchain.name.clone();
        verdict.project = self.inner.toolchain.project_name.clone();

        if let Some(problem) = &snippet.header_problem {
            verdict.reject(VerdictReason::new(
                ReasonCode::HeaderError,
                format!("the import header may hold only `import Module` lines: {problem}"),
            ));
            return Ok(verdict);
        }
        if let Some(reason) = screen::screen(&snippet.body, &request.policy) {
            verdict.reject(reason);
            return Ok(verdict);
        }
        // A pinned statement and its preamble run in the REPL too (which
        // other checks share): they pass the same screen as a body.
        if let Some(pinned) = &request.policy.pinned {
            let text = format!(
                "{}\ntheorem {} {}",
                pinned.preamble.as_deref().unwrap_or(""),
                pinned.name,
                pinned.signature().unwrap_or(&pinned.statement)
            );
            if let Some(mut reason) = screen::screen(&text, &request.policy) {
                reason.message = format!("in the pinned statement: {}", reason.message);
                verdict.reject(reason);
                return Ok(verdict);
            }
        }
        if request.policy.require_theorem
            && request.policy.pinned.is_none()
            && !screen::declares_a_theorem(&snippet.body)
        {
            verdict.reject(VerdictReason::new(
                ReasonCode::NoTheorem,
                "the snippet declares no `theorem`, `lemma` or `example` to check",
            ));
            return Ok(verdict);
        }

        let header = repl_header(&snippet.header);
        let mut checkout = self.inner.pool.checkout(&header, fresh).await?;
        verdict.timings.queued_ms = millis_since(check_started);
        verdict.repl_reused = checkout.reused;

        if checkout.repl.is_none() {
            let header_started = Instant::now();
            match self.start_repl(&header).await {
                Ok(Ok(repl)) => checkout.repl = Some(repl),
                Ok(Err(header_verdict)) => {
                    checkout.discard();
                    let mut header_verdict = *header_verdict;
                    header_verdict.timings.queued_ms = verdict.timings.queued_ms;
                    header_verdict.timings.header_ms = millis_since(header_started);
                    return Ok(header_verdict);
                }
                Err(error) => return Err(error),
            }
            verdict.timings.header_ms = millis_since(header_started);
        }

        let body_started = Instant::now();
        let deadline =
            body_started + Duration::from_secs_f64(request.timeout_seconds.clamp(0.001, 86_400.0));
        let repl = checkout.repl.as_mut().expect("checkout holds a repl");
        let outcome = run_body(repl, &snippet, request, deadline).await;
        verdict.timings.body_ms = millis_since(body_started);
        verdict.peak_memory_bytes = repl.memory_bytes();
        let mut retire_repl = request.policy.allow_metaprogramming;
        let outcome = match outcome {
            // A verdict that could be valid rests on the kernel replay, when
            // the policy asks for one.
            Ok(mut evidence)
                if request.policy.replays()
                    && judge::judge(&request.policy, &evidence).reason.is_none() =>
            {
                let replay_started = Instant::now();
                let replayed = self
                    .replay_context()
                    .replay(
                        repl,
                        evidence.body_env,
                        &header,
                        request.policy.pinned.as_ref(),
                        deadline,
                    )
                    .await;
                verdict.timings.replay_ms = millis_since(replay_started);
                match replayed {
                    Ok(replayed) => {
                        evidence.audit = Ok(replayed.entries);
                        if replayed.pinned_term.is_some() {
                            evidence.pinned_term = replayed.pinned_term;
                        }
                        Ok(evidence)
                    }
                    Err(replay::ReplayFailure::Verdict(reason)) => {
                        evidence.audit = Ok(Vec::new());
                        verdict.reject(reason);
                        Ok(evidence)
                    }
                    Err(replay::ReplayFailure::Pickle(reason)) => {
                        // What the snippet left in its REPL made the pickle
                        // fail: that REPL is not used again.
                        retire_repl = true;
                        evidence.audit = Ok(Vec::new());
                        verdict.reject(reason);
                        Ok(evidence)
                    }
                    Err(replay::ReplayFailure::Repl(failure)) => Err(failure),
                    Err(replay::ReplayFailure::Farm(error)) => {
                        checkout.discard();
                        return Err(error);
                    }
                }
            }
            other => other,
        };
        verdict.timings.lean_cpu_ms = checkout.count_cpu().as_secs_f64() * 1000.0;
        match outcome {
            Ok(evidence) => {
                // A REPL in which snippet code ran is never used again.
                if retire_repl {
                    if let Some(repl) = checkout.retire() {
                        tokio::spawn(repl.kill());
                    }
                } else {
                    checkout.give_back();
                }
                if verdict.is_valid() {
                    let judgement = judge::judge(&request.policy, &evidence);
                    if let Some(reason) = judgement.reason {
                        verdict.reject(reason);
                    }
                    verdict.axioms = judgement.axioms;
                }
                verdict.messages = evidence.messages;
                verdict.sorries = evidence.sorries;
            }
            Err(failure) => {
                let repl = checkout.retire().expect("checkout holds a repl");
                let report = repl.kill().await;
                if report.peak_memory_bytes.is_some() {
                    verdict.peak_memory_bytes = report.peak_memory_bytes;
                }
                verdict.reject(failure_reason(&failure, &report, request.timeout_seconds));
            }
        }
        tracing::debug!(
            status = verdict.status().as_str(),
            reused = verdict.repl_reused,
            "checked snippet"
        );
        Ok(verdict)
    }

    fn replay_context(&self) -> replay::ReplayContext<'_> {
        replay::ReplayContext {
            sandbox: &self.inner.sandbox,
            toolchain: &self.inner.toolchain,
            replayers: &self.inner.replayers,
            max_reply_bytes: self.inner.pool.config.max_reply_bytes,
            most_idle: self.inner.pool.config.slots.max(1),
        }
    }

    /// Start a REPL, import the header and define the audit command. An
    /// import that fails is the snippet's fault: a verdict, not an error.
    async fn start_repl(&self, header: &str) -> Result<Result<Repl, Box<Verdict>>, DriverError> {
        let toolchain = &self.inner.toolchain;
        let mut repl = Repl::spawn(
            Arc::clone(&self.inner.sandbox),
            toolchain,
            header,
            self.inner.pool.config.max_reply_bytes,
        )
        .await?;
        let deadline = Instant::now() + HEADER_TIMEOUT;
        let nonce = audit::new_nonce();
        let fail = |code, message: String, messages| {
            let mut verdict = Verdict::rejected(VerdictReason::new(code, message));
            verdict.toolchain = toolchain.name.clone();
            verdict.project = toolchain.project_name.clone();
            verdict.messages = messages;
            Ok(Err(Box::new(verdict)))
        };
        let header_env = if header.is_empty() {
            None
        } else {
            match repl.command(header, None, deadline).await {
                Ok(reply) => {
                    let messages = shift_messages(&reply.messages, 0);
                    if messages
                        .iter()
                        .any(|message| message.severity == leanfarm_core::Severity::Error)
                    {
                        tokio::spawn(repl.kill());
                        return fail(
                            ReasonCode::HeaderError,
                            "the import header does not load".into(),
                            messages,
                        );
                    }
                    Some(reply.env)
                }
                Err(failure) => {
                    let report = repl.kill().await;
                    let reason = failure_reason(&failure, &report, HEADER_TIMEOUT.as_secs_f64());
                    return fail(
                        reason.code,
                        format!("while importing the header: {}", reason.message),
                        Vec::new(),
                    );
                }
            }
        };
        match repl
            .command(&audit::audit_definition(&nonce), header_env, deadline)
            .await
        {
            Ok(reply)
                if !reply
                    .messages
                    .iter()
                    .any(|message| message.severity == Severity::Error) =>
            {
                // The audit's own constants: every later report leaves them out.
                let own = repl
                    .command(
                        &audit::audit_command_name(&nonce),
                        Some(reply.env),
                        deadline,
                    )
                    .await;
                let own = match own {
                    Ok(own) => audit::parse_audit(&nonce, info_data(&own)),
                    Err(failure) => {
                        let report = repl.kill().await;
                        return Err(DriverError::Toolchain(format!(
                            "the repl failed while starting: {failure} ({report:?})"
                        )));
                    }
                };
                match own {
                    Ok(entries) => repl.farm_names = audit::FarmNames::new(&entries),
                    Err(error) => {
                        tokio::spawn(repl.kill());
                        return Err(DriverError::Toolchain(format!(
                            "the audit command does not report in this toolchain: {error}"
                        )));
                    }
                }
                repl.nonce = nonce;
                repl.base_env = reply.env;
                Ok(Ok(repl))
            }
            Ok(reply) => {
                tokio::spawn(repl.kill());
                let first = reply
                    .messages
                    .first()
                    .map(|m| m.data.clone())
                    .unwrap_or_default();
                Err(DriverError::Toolchain(format!(
                    "the audit command does not compile in this toolchain: {first}"
                )))
            }
            Err(failure) => {
                let report = repl.kill().await;
                Err(DriverError::Toolchain(format!(
                    "the repl failed while starting: {failure} ({report:?})"
                )))
            }
        }
    }

    /// The key of the warm REPL a snippet would run on: what `warm_headers`
    /// lists, so a scheduler can send a job to a worker that holds it.
    pub fn header_key(code: &str) -> String {
        leanfarm_core::header_key(code)
    }

    /// Number of concurrent checks this driver can run.
    pub fn slots(&self) -> usize {
        self.inner.pool.config.slots.max(1)
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            out_of_memory_retries: self
                .inner
                .out_of_memory_retries
                .load(std::sync::atomic::Ordering::Relaxed),
            ..self.inner.pool.stats()
        }
    }

    /// Headers that currently have a warm REPL.
    pub fn warm_headers(&self) -> Vec<String> {
        self.inner.pool.warm_headers()
    }

    pub fn toolchain(&self) -> &ToolchainConfig {
        &self.inner.toolchain
    }

    /// Start REPLs for the configured `prestart_headers`.
    pub async fn prestart(&self) -> Result<(), DriverError> {
        let headers: Vec<String> = self
            .inner
            .pool
            .config
            .prestart_headers
            .iter()
            .map(|h| repl_header(&split_header(h).header))
            .collect();
        for header in headers.into_iter().take(self.slots()) {
            let mut checkout = self.inner.pool.checkout(&header, false).await?;
            if checkout.repl.is_none() {
                match self.start_repl(&header).await? {
                    Ok(repl) => checkout.repl = Some(repl),
                    Err(verdict) => {
                        checkout.discard();
                        let reason = verdict
                            .reason()
                            .map(|r| r.message.clone())
                            .unwrap_or_default();
                        return Err(DriverError::Toolchain(format!(
                            "prestart header `{header}` does not load: {reason}"
                        )));
                    }
                }
            }
            checkout.give_back();
        }
        Ok(())
    }

    /// Kill every idle REPL (checks still running finish on their own).
    pub async fn shutdown(&self) {
        for repl in self.inner.pool.drain_idle() {
            repl.kill().await;
        }
        for repl in self.inner.replayers.drain() {
            repl.kill().await;
        }
    }
}

/// Run the body on the REPL's base environment, then the audit (and the
/// pinned statement, if any), all before `deadline`.
async fn run_body(
    repl: &mut Repl,
    snippet: &SplitSnippet<'_>,
    request: &CheckRequest,
    deadline: Instant,
) -> Result<judge::Evidence, ReplFailure> {
    let base_env = repl.base_env;
    let reply = repl
        .command(&snippet.body, Some(base_env), deadline)
        .await?;
    let body_env = reply.env;
    let messages = shift_messages(&reply.messages, snippet.body_line_offset);
    let audit_command = audit::audit_command_name(&repl.nonce);
    let audit_reply = repl
        .command(&audit_command, Some(body_env), deadline)
        .await?;
    let audit = audit::parse_audit(&repl.nonce, info_data(&audit_reply))
        .map(|entries| repl.farm_names.remove_from(entries));

    let pinned_term = match &request.policy.pinned {
        None => None,
        Some(pinned) => {
            Some(replay::pinned_term(repl, base_env, pinned, &audit_command, deadline).await?)
        }
    };
    let sorries = reply
        .sorries
        .iter()
        .map(|sorry| leanfarm_core::VerdictSorry {
            line: sorry
                .pos
                .map_or(0, |pos| pos.line + snippet.body_line_offset),
            column: sorry.pos.map_or(0, |pos| pos.column),
            goal: sorry.goal.clone(),
        })
        .collect();
    Ok(judge::Evidence {
        messages,
        sorries,
        audit,
        pinned_term,
        body_env,
    })
}

/// The text of a reply's info messages (where the audit reports).
pub(crate) fn info_data(reply: &CommandReply) -> impl Iterator<Item = &str> {
    reply
        .messages
        .iter()
        .filter(|m| m.severity == Severity::Info)
        .map(|m| m.data.as_str())
}

fn shift_messages(messages: &[ReplMessage], line_offset: u32) -> Vec<VerdictMessage> {
    messages
        .iter()
        .map(|message| VerdictMessage {
            severity: severity(message.severity),
            line: message.pos.line + line_offset,
            column: message.pos.column,
            end_line: message.end_pos.map(|pos| pos.line + line_offset),
            end_column: message.end_pos.map(|pos| pos.column),
            data: message.data.clone(),
        })
        .collect()
}

fn severity(severity: Severity) -> leanfarm_core::Severity {
    match severity {
        Severity::Error => leanfarm_core::Severity::Error,
        Severity::Warning => leanfarm_core::Severity::Warning,
        Severity::Info => leanfarm_core::Severity::Info,
        Severity::Trace => leanfarm_core::Severity::Trace,
    }
}

/// Why a REPL that failed while checking a snippet failed.
fn failure_reason(
    failure: &ReplFailure,
    report: &ExitReport,
    timeout_seconds: f64,
) -> VerdictReason {
    if report.oom_killed {
        return VerdictReason::new(
            ReasonCode::OutOfMemory,
            "the Lean process ran out of memory",
        );
    }
    match failure {
        ReplFailure::Timeout => VerdictReason::new(
            ReasonCode::Timeout,
            format!("the check did not finish within {timeout_seconds} s"),
        ),
        ReplFailure::Exited { .. } => {
            VerdictReason::new(ReasonCode::ReplCrashed, failure.to_string())
        }
        ReplFailure::Garbage(_) => VerdictReason::new(ReasonCode::ReplGarbage, failure.to_string()),
        ReplFailure::ReplyTooLarge(_) => {
            VerdictReason::new(ReasonCode::ReplyTooLarge, failure.to_string())
        }
        ReplFailure::ErrorReply(_) => {
            VerdictReason::new(ReasonCode::ReplError, failure.to_string())
        }
    }
}

fn millis_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
