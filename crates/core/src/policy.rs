//! What a snippet must satisfy, beyond compiling, to be judged valid.

use serde::{Deserialize, Serialize};

/// The axioms a proof may depend on unless the caller says otherwise.
pub const DEFAULT_ALLOWED_AXIOMS: [&str; 3] = ["propext", "Classical.choice", "Quot.sound"];

/// The axiom `native_decide` adds (older toolchains); newer toolchains add one
/// auxiliary axiom per native computation, named `<decl>._native.native_decide.ax_*`.
pub const NATIVE_DECIDE_AXIOM: &str = "Lean.ofReduceBool";

/// The rules a verdict is judged by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Axioms every theorem may depend on.
    pub allowed_axioms: Vec<String>,
    /// Allow `native_decide` (its axioms are then allowed too).
    pub allow_native_decide: bool,
    /// Allow commands that run or extend the elaborator (`#eval`, `run_cmd`,
    /// `elab`, `macro_rules`, `syntax`, `initialize`, ...). Off by default: they
    /// are how a snippet reaches the checker's own machinery.
    pub allow_metaprogramming: bool,
    /// When set, the snippet must prove exactly this statement.
    pub pinned: Option<PinnedStatement>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_axioms: DEFAULT_ALLOWED_AXIOMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            allow_native_decide: false,
            allow_metaprogramming: false,
            pinned: None,
        }
    }
}

/// A theorem the snippet must prove, as the caller states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedStatement {
    /// The theorem's name, e.g. `mathd_algebra_10`.
    pub name: String,
    /// The statement as Lean source without the proof, e.g.
    /// `theorem mathd_algebra_10 (x : ℝ) (h : x = 2) : x + 1 = 3`.
    pub statement: String,
}
