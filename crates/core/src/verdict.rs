//! The verdict on one snippet.

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

/// Why a verdict is what it is: a stable code plus a human sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictReason {
    /// Stable machine-readable code, e.g. `forbidden_axiom`, `lean_error`,
    /// `uses_sorry`, `statement_mismatch`, `forbidden_command`, `timeout`,
    /// `out_of_memory`, `repl_crashed`, `repl_garbage`.
    pub code: String,
    pub message: String,
}

impl VerdictReason {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        VerdictReason {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// A message Lean reported, with positions relative to the submitted snippet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictMessage {
    /// `error`, `warning`, `info` or `trace`.
    pub severity: String,
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
}

/// The verdict on one snippet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: CheckStatus,
    /// Set for every status but `valid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<VerdictReason>,
    pub messages: Vec<VerdictMessage>,
    /// The `sorry`s Lean reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

impl Verdict {
    /// A verdict for a check that produced no Lean output at all.
    pub fn failed(status: CheckStatus, reason: VerdictReason) -> Self {
        Verdict {
            status,
            reason: Some(reason),
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

    pub fn is_valid(&self) -> bool {
        self.status == CheckStatus::Valid
    }
}
