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
mod wire;

use lean_protocol::{Message as ReplMessage, Severity};
use leanfarm_core::{
    split_header, CheckRequest, CheckStatus, SplitSnippet, Verdict, VerdictMessage, VerdictReason,
};
use leanfarm_sandbox::{ExitReport, Sandbox, SandboxError};
use pool::Pool;
use repl::{Repl, ReplFailure};
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
    /// A REPL is retired once its tree's resident memory exceeds this.
    pub max_repl_memory_bytes: u64,
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
            max_repl_memory_bytes: 8 << 30,
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
}

/// How long starting a REPL and importing its header may take.
const HEADER_TIMEOUT: Duration = Duration::from_secs(300);

impl Driver {
    pub fn new(toolchain: ToolchainConfig, pool: PoolConfig, sandbox: Arc<Sandbox>) -> Driver {
        Driver {
            inner: Arc::new(DriverInner {
                toolchain,
                sandbox,
                pool: Pool::new(pool),
            }),
        }
    }

    /// Check one snippet. Lean's own failures (errors, timeouts, crashes,
    /// memory) are verdicts; `Err` means the farm could not run the check.
    pub async fn check(&self, request: &CheckRequest) -> Result<Verdict, DriverError> {
        let check_started = Instant::now();
        let snippet = split_header(&request.code);
        let mut verdict = Verdict::failed(CheckStatus::Valid, VerdictReason::new("", ""));
        verdict.reason = None;
        verdict.toolchain = self.inner.toolchain.name.clone();
        verdict.project = self.inner.toolchain.project_name.clone();

        if let Some(reason) = judge::prescreen(snippet.body, &request.policy) {
            verdict.status = CheckStatus::LeanError;
            verdict.reason = Some(reason);
            return Ok(verdict);
        }

        let header = repl_header(&snippet.header);
        let mut checkout = self.inner.pool.checkout(&header).await?;
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
        match outcome {
            Ok(evidence) => {
                checkout.give_back();
                let judgement = judge::judge(&request.policy, &evidence);
                verdict.status = judgement.status;
                verdict.reason = judgement.reason;
                verdict.axioms = judgement.axioms;
                verdict.messages = evidence.messages;
                verdict.sorries = evidence.sorries;
            }
            Err(failure) => {
                let repl = checkout.retire().expect("checkout holds a repl");
                let report = repl.kill().await;
                if report.peak_memory_bytes.is_some() {
                    verdict.peak_memory_bytes = report.peak_memory_bytes;
                }
                let (status, reason) = failure_verdict(&failure, &report, request.timeout_seconds);
                verdict.status = status;
                verdict.reason = Some(reason);
            }
        }
        tracing::debug!(
            status = verdict.status.as_str(),
            reused = verdict.repl_reused,
            "checked snippet"
        );
        Ok(verdict)
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
        let fail = |status, code: &str, message: String, messages| {
            let mut verdict = Verdict::failed(status, VerdictReason::new(code, message));
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
                    if messages.iter().any(|message| message.severity == "error") {
                        tokio::spawn(repl.kill());
                        return fail(
                            CheckStatus::LeanError,
                            "header_error",
                            "the import header does not load".into(),
                            messages,
                        );
                    }
                    Some(reply.env)
                }
                Err(failure) => {
                    let report = repl.kill().await;
                    let (status, reason) =
                        failure_verdict(&failure, &report, HEADER_TIMEOUT.as_secs_f64());
                    return fail(
                        status,
                        &reason.code,
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
        repl_header(&split_header(code).header)
    }

    /// Number of concurrent checks this driver can run.
    pub fn slots(&self) -> usize {
        self.inner.pool.config.slots.max(1)
    }

    pub fn stats(&self) -> PoolStats {
        self.inner.pool.stats()
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
            let mut checkout = self.inner.pool.checkout(&header).await?;
            if checkout.repl.is_none() {
                match self.start_repl(&header).await? {
                    Ok(repl) => checkout.repl = Some(repl),
                    Err(verdict) => {
                        checkout.discard();
                        let reason = verdict.reason.map(|r| r.message).unwrap_or_default();
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
    }
}

/// The header a REPL loads: the snippet's imports, plus `import Lean` when
/// they do not already bring Lean's meta API, which the audit command needs.
fn repl_header(snippet_header: &str) -> String {
    let brings_lean = snippet_header.lines().any(|line| {
        matches!(
            line.trim_start_matches("import ").trim(),
            "Lean" | "Mathlib"
        )
    });
    if brings_lean {
        return snippet_header.to_string();
    }
    if snippet_header.is_empty() {
        "import Lean".to_string()
    } else {
        format!("import Lean\n{snippet_header}")
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
    let reply = repl.command(snippet.body, Some(base_env), deadline).await?;
    let body_env = reply.env;
    let messages = shift_messages(&reply.messages, snippet.body_line_offset);
    let audit_command = audit::audit_command_name(&repl.nonce);
    let audit_reply = repl
        .command(&audit_command, Some(body_env), deadline)
        .await?;
    let audit = audit::parse_audit(&repl.nonce, info_data(&audit_reply));

    let pinned_type = match &request.policy.pinned {
        None => None,
        Some(pinned) => Some(match pinned_signature(&pinned.statement, &pinned.name) {
            Err(error) => Err(error),
            Ok(signature) => {
                let pinned_name = format!("leanfarm_pinned_{}", repl.nonce);
                let statement = format!("theorem {pinned_name} {signature} := sorry");
                let pinned_reply = repl.command(&statement, Some(base_env), deadline).await?;
                if let Some(error) = pinned_reply
                    .messages
                    .iter()
                    .find(|m| m.severity == Severity::Error)
                {
                    Err(error.data.clone())
                } else {
                    let pinned_env = pinned_reply.env;
                    let audit_reply = repl
                        .command(&audit_command, Some(pinned_env), deadline)
                        .await?;
                    match audit::parse_audit(&repl.nonce, info_data(&audit_reply)) {
                        Ok(entries) => entries
                            .into_iter()
                            .find(|entry| entry.name == pinned_name)
                            .map(|entry| entry.type_text)
                            .ok_or_else(|| "the pinned statement was not declared".to_string()),
                        Err(error) => Err(error.to_string()),
                    }
                }
            }
        }),
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
        pinned_type,
    })
}

fn info_data(reply: &CommandReply) -> impl Iterator<Item = &str> {
    reply
        .messages
        .iter()
        .filter(|m| m.severity == Severity::Info)
        .map(|m| m.data.as_str())
}

/// The part of a pinned statement after `theorem NAME`.
fn pinned_signature<'a>(statement: &'a str, name: &str) -> Result<&'a str, String> {
    let trimmed = statement.trim();
    let after_keyword = trimmed
        .strip_prefix("theorem")
        .or_else(|| trimmed.strip_prefix("lemma"))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .ok_or_else(|| "the pinned statement must start with `theorem NAME`".to_string())?
        .trim_start();
    let signature = after_keyword
        .strip_prefix(name)
        .filter(|rest| {
            rest.is_empty()
                || rest.starts_with(char::is_whitespace)
                || rest.starts_with(['(', '{', '[', ':'])
        })
        .ok_or_else(|| format!("the pinned statement must declare `{name}`"))?;
    let signature = signature.split(":=").next().unwrap_or(signature).trim();
    if signature.is_empty() {
        return Err("the pinned statement has no type".to_string());
    }
    Ok(signature)
}

fn shift_messages(messages: &[ReplMessage], line_offset: u32) -> Vec<VerdictMessage> {
    messages
        .iter()
        .map(|message| VerdictMessage {
            severity: message.severity.as_str().to_string(),
            line: message.pos.line + line_offset,
            column: message.pos.column,
            end_line: message.end_pos.map(|pos| pos.line + line_offset),
            end_column: message.end_pos.map(|pos| pos.column),
            data: message.data.clone(),
        })
        .collect()
}

/// The verdict for a REPL that failed while checking a snippet.
fn failure_verdict(
    failure: &ReplFailure,
    report: &ExitReport,
    timeout_seconds: f64,
) -> (CheckStatus, VerdictReason) {
    if report.oom_killed {
        return (
            CheckStatus::ReplError,
            VerdictReason::new("out_of_memory", "the Lean process ran out of memory"),
        );
    }
    match failure {
        ReplFailure::Timeout => (
            CheckStatus::TimeoutError,
            VerdictReason::new(
                "timeout",
                format!("the check did not finish within {timeout_seconds} s"),
            ),
        ),
        ReplFailure::Exited { .. } => (
            CheckStatus::ReplError,
            VerdictReason::new("repl_crashed", failure.to_string()),
        ),
        ReplFailure::Garbage(_) => (
            CheckStatus::ReplError,
            VerdictReason::new("repl_garbage", failure.to_string()),
        ),
        ReplFailure::ReplyTooLarge(_) => (
            CheckStatus::ReplError,
            VerdictReason::new("reply_too_large", failure.to_string()),
        ),
        ReplFailure::ErrorReply(_) => (
            CheckStatus::ReplError,
            VerdictReason::new("repl_error", failure.to_string()),
        ),
    }
}

fn millis_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
