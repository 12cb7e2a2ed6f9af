//! The check-request shortcut and the verdict accessor tests use everywhere.

use leanfarm_core::{CheckRequest, Policy, Verdict};

/// A request to check `code` with the default policy and a 10 s budget.
pub fn request(code: &str) -> CheckRequest {
    CheckRequest {
        custom_id: None,
        code: code.to_string(),
        timeout_seconds: 10.0,
        policy: Policy::default(),
        infotree: None,
        trace_context: None,
    }
}

/// The code of a verdict's reason; empty for a valid one.
pub fn reason_code(verdict: &Verdict) -> &str {
    verdict.reason().map_or("", |reason| reason.code.as_str())
}
