//! What a snippet must satisfy, beyond compiling, to be judged valid.

use serde::{Deserialize, Serialize};

/// The axioms a proof may depend on unless the caller says otherwise.
pub const DEFAULT_ALLOWED_AXIOMS: [&str; 3] = ["propext", "Classical.choice", "Quot.sound"];

/// The axiom `native_decide` adds (older toolchains); newer toolchains add one
/// auxiliary axiom per native computation (see `is_native_auxiliary_axiom`).
pub const NATIVE_DECIDE_AXIOM: &str = "Lean.ofReduceBool";

/// The rules a verdict is judged by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Axioms every theorem may depend on.
    pub allowed_axioms: Vec<String>,
    /// Allow `native_decide` (its axioms are then allowed too).
    pub allow_native_decide: bool,
    /// Lift the allow-list of commands: allow commands that run or extend the
    /// elaborator (`#eval`, `run_cmd`, `elab`, `macro_rules`, `syntax`,
    /// `initialize`, ...). Off by default: they are how a snippet reaches the
    /// checker's own machinery. A REPL that ran a snippet with it on is never
    /// used again, and such a check is replayed unless `replay` is `never`.
    pub allow_metaprogramming: bool,
    /// When set, the snippet must prove exactly this statement.
    pub pinned: Option<PinnedStatement>,
    /// The snippet must declare a `theorem`, `lemma` or `example` (or the
    /// pinned theorem); otherwise its verdict is `no_theorem`. The Kimina
    /// endpoints turn it off, as the Kimina Lean Server has no such rule.
    pub require_theorem: bool,
    /// When the body's declarations are checked again by Lean's kernel in a
    /// process that never ran the snippet's code.
    pub replay: ReplayMode,
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
            require_theorem: true,
            replay: ReplayMode::default(),
        }
    }
}

impl Policy {
    /// Whether this check's declarations are replayed in a fresh process.
    pub fn replays(&self) -> bool {
        match self.replay {
            ReplayMode::Always => true,
            ReplayMode::WhenMetaprogramming => self.allow_metaprogramming,
            ReplayMode::Never => false,
        }
    }
}

/// When a kernel replay runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMode {
    /// Every check that could be valid (the default: the verdict then never
    /// rests on the process the snippet ran in).
    #[default]
    Always,
    /// Only checks whose policy allows metaprogramming.
    WhenMetaprogramming,
    /// Never: the audit in the snippet's own REPL is trusted.
    Never,
}

/// Whether an axiom is one that `native_decide`, `decide +native` or
/// `bv_decide` generates for the theorem it proves, under either naming
/// scheme: `<decl>._native.native_decide.ax_*` (before Lean 4.29) and
/// `<decl>._native.decide.ax_*` / `<decl>._native.bv_decide.ax_*` (from 4.29).
pub fn is_native_auxiliary_axiom(axiom: &str) -> bool {
    [
        "._native.native_decide.ax_",
        "._native.decide.ax_",
        "._native.bv_decide.ax_",
    ]
    .iter()
    .any(|infix| {
        axiom.split_once(infix).is_some_and(|(owner, suffix)| {
            !owner.is_empty()
                && !suffix.is_empty()
                && suffix.chars().all(|c| c.is_ascii_digit() || c == '_')
        })
    })
}

/// A theorem the snippet must prove, as the caller states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedStatement {
    /// The theorem's name, e.g. `mathd_algebra_10`.
    pub name: String,
    /// The statement as Lean source, e.g.
    /// `theorem mathd_algebra_10 (x : ℝ) (h : x = 2) : x + 1 = 3`; a trailing
    /// `:= by sorry`, `:= sorry` or `:=` is ignored.
    pub statement: String,
    /// `open` and `variable` lines the statement is elaborated under (as
    /// miniF2F-style sets assume `open Real Nat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preamble: Option<String>,
}

/// Why a pinned statement cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementError {
    NotATheorem,
    WrongName { expected: String },
    NoType,
    BadName,
}

impl std::fmt::Display for StatementError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementError::NotATheorem => {
                formatter.write_str("the pinned statement must start with `theorem NAME`")
            }
            StatementError::WrongName { expected } => {
                write!(formatter, "the pinned statement must declare `{expected}`")
            }
            StatementError::NoType => formatter.write_str("the pinned statement has no type"),
            StatementError::BadName => formatter.write_str(
                "the pinned name must be a Lean identifier (letters, digits, `_`, `'`, `.`)",
            ),
        }
    }
}

impl PinnedStatement {
    /// The part of the statement after `theorem NAME` (binders and type),
    /// without a trailing `:= sorry`-style proof.
    pub fn signature(&self) -> Result<&str, StatementError> {
        let name_ok = !self.name.is_empty()
            && self.name.split('.').all(|part| {
                part.chars().next().is_some_and(|c| !c.is_ascii_digit())
                    && part.chars().all(|c| {
                        c.is_alphanumeric() || c == '_' || c == '\'' || c == '!' || c == '?'
                    })
            });
        if !name_ok {
            return Err(StatementError::BadName);
        }
        let trimmed = self.statement.trim();
        let after_keyword = trimmed
            .strip_prefix("theorem")
            .or_else(|| trimmed.strip_prefix("lemma"))
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .ok_or(StatementError::NotATheorem)?
            .trim_start();
        let signature = after_keyword
            .strip_prefix(self.name.as_str())
            .filter(|rest| {
                rest.is_empty()
                    || rest.starts_with(char::is_whitespace)
                    || rest.starts_with(['(', '{', '[', ':', '⦃'])
            })
            .ok_or_else(|| StatementError::WrongName {
                expected: self.name.clone(),
            })?;
        let signature = strip_placeholder_proof(signature.trim());
        if !signature.contains(':') {
            return Err(StatementError::NoType);
        }
        Ok(signature)
    }
}

/// Remove a trailing `:= by sorry`, `:= sorry` or `:=`: what problem sets
/// write after a statement. A `:=` inside the statement (`let x := 1; ...`)
/// stays.
fn strip_placeholder_proof(signature: &str) -> &str {
    let mut rest = signature.trim_end();
    for tail in ["sorry", "by"] {
        if let Some(before) = rest.strip_suffix(tail) {
            let boundary = before
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || c == '=');
            if boundary {
                rest = before.trim_end();
            }
        }
    }
    match rest.strip_suffix(":=") {
        Some(before) => before.trim_end(),
        None if rest.len() == signature.trim_end().len() => rest,
        // `by`/`sorry` without `:=` was part of the statement after all.
        None => signature.trim_end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(name: &str, statement: &str) -> PinnedStatement {
        PinnedStatement {
            name: name.into(),
            statement: statement.into(),
            preamble: None,
        }
    }

    #[test]
    fn signature_is_what_follows_the_name() {
        let statement = pinned("t", "theorem t (x : Nat) (h : x = 2) : x + 1 = 3");
        assert_eq!(
            statement.signature(),
            Ok("(x : Nat) (h : x = 2) : x + 1 = 3")
        );
        let statement = pinned("t", "lemma t : 1 = 1 := by sorry");
        assert_eq!(statement.signature(), Ok(": 1 = 1"));
        let statement = pinned("t", "theorem t : 1 = 1 :=");
        assert_eq!(statement.signature(), Ok(": 1 = 1"));
        let statement = pinned("t", "theorem t : 1 = 1 := sorry");
        assert_eq!(statement.signature(), Ok(": 1 = 1"));
    }

    #[test]
    fn a_colon_equals_inside_the_statement_stays() {
        let statement = pinned("t", "theorem t : (let x := 1; x) = 1");
        assert_eq!(statement.signature(), Ok(": (let x := 1; x) = 1"));
        let statement = pinned(
            "t",
            "theorem t (f : Nat → Nat) (h : ∀ n, f n = (let m := n; m)) : f 0 = 0 := by sorry",
        );
        assert_eq!(
            statement.signature(),
            Ok("(f : Nat → Nat) (h : ∀ n, f n = (let m := n; m)) : f 0 = 0")
        );
    }

    #[test]
    fn bad_statements_are_refused() {
        assert_eq!(
            pinned("t", "def t : Nat").signature(),
            Err(StatementError::NotATheorem)
        );
        assert!(matches!(
            pinned("t", "theorem u : True").signature(),
            Err(StatementError::WrongName { .. })
        ));
        assert!(matches!(
            pinned("t", "theorem tt : True").signature(),
            Err(StatementError::WrongName { .. })
        ));
        assert_eq!(
            pinned("t", "theorem t").signature(),
            Err(StatementError::NoType)
        );
        assert_eq!(
            pinned("1t", "theorem 1t : True").signature(),
            Err(StatementError::BadName)
        );
        assert_eq!(
            pinned("t x", "theorem t x : True").signature(),
            Err(StatementError::BadName)
        );
    }

    #[test]
    fn native_auxiliary_axioms_under_both_naming_schemes() {
        for name in [
            "t._native.native_decide.ax_1_1",
            "Foo.t._native.decide.ax_1",
            "t._native.bv_decide.ax_2_3",
        ] {
            assert!(is_native_auxiliary_axiom(name), "{name}");
        }
        for name in [
            "cheat",
            "_native.native_decide.ax_1",
            "t._native.native_decide.ax_",
            "t._native.native_decide.ax_1.cheat",
            "t._native.other.ax_1",
        ] {
            assert!(!is_native_auxiliary_axiom(name), "{name}");
        }
    }

    #[test]
    fn replay_follows_the_mode() {
        let mut policy = Policy::default();
        assert!(policy.replays(), "the default replays");
        policy.replay = ReplayMode::WhenMetaprogramming;
        assert!(!policy.replays());
        policy.allow_metaprogramming = true;
        assert!(policy.replays());
        policy.replay = ReplayMode::Never;
        assert!(!policy.replays());
    }
}
