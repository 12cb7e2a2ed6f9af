//! The verdict on one snippet, and its vocabulary: statuses, reason codes,
//! message severities.
//!
//! A verdict's status follows from its reason: `valid` has none, and every
//! reason code belongs to exactly one other status. So no constructor, and no
//! JSON a worker sends, can make a `valid` verdict that carries a reason or a
//! failed one without it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of a check, with the Kimina Lean Server's status names so its
/// clients understand it unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Lean accepted the snippet and every policy rule holds.
    Valid,
    /// The snippet uses `sorry` (or depends on `sorryAx`).
    Sorry,
    /// Lean reported an error, or a policy rule is broken.
    LeanError,
    /// The Lean process failed: it crashed, printed garbage or ran out of memory.
    ReplError,
    /// The check ran past its time budget.
    TimeoutError,
    /// The farm itself failed to run the check.
    ServerError,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 6] = [
        CheckStatus::Valid,
        CheckStatus::Sorry,
        CheckStatus::LeanError,
        CheckStatus::ReplError,
        CheckStatus::TimeoutError,
        CheckStatus::ServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Valid => "valid",
            CheckStatus::Sorry => "sorry",
            CheckStatus::LeanError => "lean_error",
            CheckStatus::ReplError => "repl_error",
            CheckStatus::TimeoutError => "timeout_error",
            CheckStatus::ServerError => "server_error",
        }
    }
}

/// Why a verdict is not `valid`: a stable, machine-readable code. Each code
/// belongs to one status (`ReasonCode::status`). docs/verdicts.md lists them
/// all, and a test keeps the two lists equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// A command, attribute or option outside what the policy allows.
    ForbiddenCommand,
    /// The import header is not only imports, or does not load.
    HeaderError,
    /// Lean reported an error.
    LeanError,
    /// The snippet declares no theorem to check.
    NoTheorem,
    /// The proof uses `sorry`.
    UsesSorry,
    /// The farm's audit of what the snippet declared is missing or malformed.
    AuditFailed,
    /// The snippet declares an axiom.
    ForbiddenDeclaration,
    /// A declaration depends on an axiom the policy does not allow.
    ForbiddenAxiom,
    /// The pinned theorem is not declared.
    StatementMissing,
    /// The pinned theorem is declared with another statement.
    StatementMismatch,
    /// Lean's kernel, replaying the declarations in a fresh process, refused one.
    KernelRejected,
    /// The check ran past its time budget.
    Timeout,
    /// The Lean process ran out of memory.
    OutOfMemory,
    /// The Lean process crashed or exited mid-reply.
    ReplCrashed,
    /// The Lean process printed something that is not a reply.
    ReplGarbage,
    /// The Lean process's reply exceeded the size cap.
    ReplyTooLarge,
    /// The REPL answered a command with an error.
    ReplError,
    /// The submitter cancelled the check before it finished: it was never
    /// judged. Its status is `server_error` (the farm did not check it),
    /// never a judgment of the proof.
    Cancelled,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 18] = [
        ReasonCode::ForbiddenCommand,
        ReasonCode::HeaderError,
        ReasonCode::LeanError,
        ReasonCode::NoTheorem,
        ReasonCode::UsesSorry,
        ReasonCode::AuditFailed,
        ReasonCode::ForbiddenDeclaration,
        ReasonCode::ForbiddenAxiom,
        ReasonCode::StatementMissing,
        ReasonCode::StatementMismatch,
        ReasonCode::KernelRejected,
        ReasonCode::Timeout,
        ReasonCode::OutOfMemory,
        ReasonCode::ReplCrashed,
        ReasonCode::ReplGarbage,
        ReasonCode::ReplyTooLarge,
        ReasonCode::ReplError,
        ReasonCode::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::ForbiddenCommand => "forbidden_command",
            ReasonCode::HeaderError => "header_error",
            ReasonCode::LeanError => "lean_error",
            ReasonCode::NoTheorem => "no_theorem",
            ReasonCode::UsesSorry => "uses_sorry",
            ReasonCode::AuditFailed => "audit_failed",
            ReasonCode::ForbiddenDeclaration => "forbidden_declaration",
            ReasonCode::ForbiddenAxiom => "forbidden_axiom",
            ReasonCode::StatementMissing => "statement_missing",
            ReasonCode::StatementMismatch => "statement_mismatch",
            ReasonCode::KernelRejected => "kernel_rejected",
            ReasonCode::Timeout => "timeout",
            ReasonCode::OutOfMemory => "out_of_memory",
            ReasonCode::ReplCrashed => "repl_crashed",
            ReasonCode::ReplGarbage => "repl_garbage",
            ReasonCode::ReplyTooLarge => "reply_too_large",
            ReasonCode::ReplError => "repl_error",
            ReasonCode::Cancelled => "cancelled",
        }
    }

    /// The status a verdict with this reason has. Never `valid`.
    pub fn status(self) -> CheckStatus {
        match self {
            ReasonCode::UsesSorry => CheckStatus::Sorry,
            ReasonCode::Timeout => CheckStatus::TimeoutError,
            ReasonCode::Cancelled => CheckStatus::ServerError,
            ReasonCode::OutOfMemory
            | ReasonCode::ReplCrashed
            | ReasonCode::ReplGarbage
            | ReasonCode::ReplyTooLarge
            | ReasonCode::ReplError => CheckStatus::ReplError,
            ReasonCode::ForbiddenCommand
            | ReasonCode::HeaderError
            | ReasonCode::LeanError
            | ReasonCode::NoTheorem
            | ReasonCode::AuditFailed
            | ReasonCode::ForbiddenDeclaration
            | ReasonCode::ForbiddenAxiom
            | ReasonCode::StatementMissing
            | ReasonCode::StatementMismatch
            | ReasonCode::KernelRejected => CheckStatus::LeanError,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a verdict is what it is: a stable code plus a human sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictReason {
    pub code: ReasonCode,
    pub message: String,
}

impl VerdictReason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        VerdictReason {
            code,
            message: message.into(),
        }
    }
}

/// How serious a message is, as Lean says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Trace,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Trace => "trace",
        }
    }
}

/// A message Lean reported, with positions relative to the submitted snippet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictMessage {
    pub severity: Severity,
    /// 1-based line, 0-based column, as Lean counts them.
    pub line: u32,
    pub column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
    pub data: String,
}

/// A `sorry` Lean reported, with the goal it leaves open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictSorry {
    pub line: u32,
    pub column: u32,
    pub goal: String,
}

/// Where the time went, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Waiting for a REPL slot.
    pub queued_ms: f64,
    /// Starting a REPL and importing the header (0 on a reused REPL).
    pub header_ms: f64,
    /// Elaborating the body and auditing it.
    pub body_ms: f64,
    /// Replaying the body's declarations in Lean's kernel, in a process that
    /// never ran the snippet (0 when not replayed).
    #[serde(default)]
    pub replay_ms: f64,
    /// CPU time of the snippet's REPL process tree for this check (its
    /// header import when the REPL was started for it, the body and the
    /// audit), from the sandbox's cgroup; 0 where the sandbox does not
    /// measure it (`none`).
    #[serde(default)]
    pub lean_cpu_ms: f64,
}

/// The verdict on one snippet. Its status and reason are set together
/// (`Verdict::valid`, `Verdict::rejected`, `Verdict::reject`), never apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VerdictFields", into = "VerdictFields")]
pub struct Verdict {
    /// `None` exactly when the verdict is `valid`.
    reason: Option<VerdictReason>,
    pub messages: Vec<VerdictMessage>,
    /// The `sorry`s Lean reported.
    pub sorries: Vec<VerdictSorry>,
    /// For each theorem the snippet declares, the axioms it depends on.
    pub axioms: BTreeMap<String, Vec<String>>,
    /// The toolchain and project the snippet was checked against.
    pub toolchain: String,
    pub project: String,
    pub timings: Timings,
    /// Whether the snippet ran on a warm REPL whose header was already imported.
    pub repl_reused: bool,
    /// Peak resident memory of the Lean process, when the sandbox measured it.
    pub peak_memory_bytes: Option<u64>,
}

impl Verdict {
    /// A `valid` verdict, with nothing filled in yet.
    pub fn valid() -> Self {
        Verdict {
            reason: None,
            messages: Vec::new(),
            sorries: Vec::new(),
            axioms: BTreeMap::new(),
            toolchain: String::new(),
            project: String::new(),
            timings: Timings::default(),
            repl_reused: false,
            peak_memory_bytes: None,
        }
    }

    /// A verdict that is not valid, for the reason given; its status is the
    /// reason code's.
    pub fn rejected(reason: VerdictReason) -> Self {
        let mut verdict = Verdict::valid();
        verdict.reason = Some(reason);
        verdict
    }

    /// Make this verdict not valid, for the reason given.
    pub fn reject(&mut self, reason: VerdictReason) {
        self.reason = Some(reason);
    }

    pub fn status(&self) -> CheckStatus {
        self.reason
            .as_ref()
            .map_or(CheckStatus::Valid, |reason| reason.code.status())
    }

    pub fn reason(&self) -> Option<&VerdictReason> {
        self.reason.as_ref()
    }

    pub fn is_valid(&self) -> bool {
        self.reason.is_none()
    }
}

/// The JSON shape of a verdict: `status` is written out for clients, and
/// checked against the reason when read.
#[derive(Serialize, Deserialize)]
struct VerdictFields {
    status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<VerdictReason>,
    messages: Vec<VerdictMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sorries: Vec<VerdictSorry>,
    axioms: BTreeMap<String, Vec<String>>,
    toolchain: String,
    project: String,
    timings: Timings,
    repl_reused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peak_memory_bytes: Option<u64>,
}

impl From<Verdict> for VerdictFields {
    fn from(verdict: Verdict) -> Self {
        VerdictFields {
            status: verdict.status(),
            reason: verdict.reason,
            messages: verdict.messages,
            sorries: verdict.sorries,
            axioms: verdict.axioms,
            toolchain: verdict.toolchain,
            project: verdict.project,
            timings: verdict.timings,
            repl_reused: verdict.repl_reused,
            peak_memory_bytes: verdict.peak_memory_bytes,
        }
    }
}

impl TryFrom<VerdictFields> for Verdict {
    type Error = String;

    fn try_from(fields: VerdictFields) -> Result<Self, Self::Error> {
        let implied = fields
            .reason
            .as_ref()
            .map_or(CheckStatus::Valid, |reason| reason.code.status());
        if implied != fields.status {
            return Err(match &fields.reason {
                None => format!("status `{}` needs a reason", fields.status.as_str()),
                Some(reason) => format!(
                    "status `{}` does not go with reason `{}` (which means `{}`)",
                    fields.status.as_str(),
                    reason.code,
                    implied.as_str()
                ),
            });
        }
        Ok(Verdict {
            reason: fields.reason,
            messages: fields.messages,
            sorries: fields.sorries,
            axioms: fields.axioms,
            toolchain: fields.toolchain,
            project: fields.project,
            timings: fields.timings,
            repl_reused: fields.repl_reused,
            peak_memory_bytes: fields.peak_memory_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reason_code_means_valid() {
        for code in ReasonCode::ALL {
            assert_ne!(code.status(), CheckStatus::Valid, "{code}");
            let verdict = Verdict::rejected(VerdictReason::new(code, "why"));
            assert!(!verdict.is_valid());
            assert_eq!(verdict.status(), code.status());
        }
        assert_eq!(Verdict::valid().status(), CheckStatus::Valid);
    }

    /// docs/verdicts.md's table of rules names every reason code, and no other.
    #[test]
    fn the_documented_reason_codes_are_the_enum() {
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/verdicts.md"
        ))
        .unwrap();
        let mut documented: Vec<&str> = docs
            .lines()
            .filter(|line| line.starts_with('|'))
            .filter_map(|line| line.trim_end_matches('|').rsplit('|').next())
            .flat_map(|cell| cell.split('/'))
            .filter_map(|code| code.trim().strip_prefix('`')?.strip_suffix('`'))
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut codes: Vec<&str> = ReasonCode::ALL.iter().map(|code| code.as_str()).collect();
        codes.sort_unstable();
        assert_eq!(documented, codes);
    }

    #[test]
    fn reason_codes_serialize_to_their_names() {
        for code in ReasonCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_string())
            );
        }
    }

    #[test]
    fn json_round_trips_and_refuses_a_status_its_reason_contradicts() {
        let verdict = Verdict::rejected(VerdictReason::new(ReasonCode::UsesSorry, "sorry"));
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(json["status"], "sorry");
        assert_eq!(json["reason"]["code"], "uses_sorry");
        let back: Verdict = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, verdict);

        let mut forged = json.clone();
        forged["status"] = "valid".into();
        let error = serde_json::from_value::<Verdict>(forged).unwrap_err();
        assert!(error.to_string().contains("does not go with"), "{error}");

        let mut reasonless = serde_json::to_value(Verdict::valid()).unwrap();
        reasonless["status"] = "lean_error".into();
        let error = serde_json::from_value::<Verdict>(reasonless).unwrap_err();
        assert!(error.to_string().contains("needs a reason"), "{error}");
    }
}
