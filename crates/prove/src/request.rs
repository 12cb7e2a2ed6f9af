//! What a caller asks of a prove job, its budgets, and what it used.

use leanfarm_core::{PinnedStatement, Policy};
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/prove`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProveRequest {
    /// `theorem NAME BINDERS : TYPE`, without a proof.
    pub statement: String,
    /// `open`, `variable` and helper lines the statement is elaborated under.
    #[serde(default)]
    pub preamble: String,
    /// The import header, e.g. `import Mathlib`.
    #[serde(default)]
    pub header: String,
    /// The policy every candidate is checked with; the statement is pinned
    /// by the farm (a `pinned` given here is refused).
    #[serde(default)]
    pub policy: Policy,
    /// The model route (`dummy` is built in).
    #[serde(default = "default_route")]
    pub route: String,
    #[serde(default)]
    pub strategy: Strategy,
    /// Premises from the retriever added to the prompt.
    #[serde(default)]
    pub premises: Option<PremiseRequest>,
    #[serde(default)]
    pub budget: Budget,
    /// Each candidate's check timeout, in seconds.
    #[serde(default = "leanfarm_core::default_timeout_seconds")]
    pub timeout_seconds: f64,
}

fn default_route() -> String {
    "dummy".to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PremiseRequest {
    pub k: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// `n` independent candidates per round.
    Sample,
    /// Each failed candidate's Lean messages go back to the model in the next round.
    Refine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    pub kind: StrategyKind,
    /// Candidates per round.
    #[serde(default = "default_n")]
    pub n: u32,
    /// Rounds at most.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
}

fn default_n() -> u32 {
    4
}
fn default_rounds() -> u32 {
    2
}

impl Default for Strategy {
    fn default() -> Strategy {
        Strategy {
            kind: StrategyKind::Sample,
            n: default_n(),
            rounds: default_rounds(),
        }
    }
}

/// The most a job may use. Every field is optional in a request and takes
/// the farm's default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default = "default_candidates")]
    pub candidates: u64,
    #[serde(default = "default_tokens")]
    pub tokens: u64,
    #[serde(default = "default_cpu_seconds")]
    pub cpu_seconds: f64,
    #[serde(default = "default_wall_seconds")]
    pub wall_seconds: f64,
}

fn default_candidates() -> u64 {
    16
}
fn default_tokens() -> u64 {
    100_000
}
fn default_cpu_seconds() -> f64 {
    600.0
}
fn default_wall_seconds() -> f64 {
    600.0
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            candidates: default_candidates(),
            tokens: default_tokens(),
            cpu_seconds: default_cpu_seconds(),
            wall_seconds: default_wall_seconds(),
        }
    }
}

/// What a job has used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Candidates submitted for checking.
    pub candidates: u64,
    /// Model tokens (prompt and completion).
    pub tokens: u64,
    /// Model cost, in the unit the routes' prices are given in.
    pub cost: f64,
    /// Lean time of the candidates' checks, in seconds (from their verdicts' timings).
    pub cpu_seconds: f64,
    /// Since the job was submitted.
    pub wall_seconds: f64,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    Proved {
        proof: String,
        reason: Option<String>,
    },
    Exhausted {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
}

impl Outcome {
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Proved { .. } => "proved",
            Outcome::Exhausted { .. } => "exhausted",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled { .. } => "cancelled",
        }
    }

    pub fn proof(&self) -> Option<&str> {
        match self {
            Outcome::Proved { proof, .. } => Some(proof),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Proved { reason, .. } => reason.as_deref(),
            Outcome::Exhausted { reason }
            | Outcome::Failed { reason }
            | Outcome::Cancelled { reason } => Some(reason),
        }
    }
}

/// Why a prove request is refused before it starts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("the statement cannot be proved: {0}")]
    Statement(String),
    #[error("the policy may not pin a statement: the farm pins `statement` itself")]
    PolicyPinned,
    #[error("`{field}` must be between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        min: f64,
        max: f64,
    },
    #[error("`{field}` is {size} bytes; the limit is {limit}")]
    TooLarge {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("`{field}` contains a NUL byte")]
    NulByte { field: &'static str },
}

/// The farm's ceilings on one job's budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetCeiling {
    pub candidates: u64,
    pub tokens: u64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
}

impl Default for BudgetCeiling {
    fn default() -> BudgetCeiling {
        BudgetCeiling {
            candidates: 1000,
            tokens: 10_000_000,
            cpu_seconds: 36_000.0,
            wall_seconds: 86_400.0,
        }
    }
}

/// Longest statement, preamble or header, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// Most candidates per round and rounds per job.
pub const MAX_CANDIDATES_PER_ROUND: u32 = 64;
pub const MAX_ROUNDS: u32 = 100;
/// Most premises a prompt may ask for.
pub const MAX_PREMISES: usize = 64;

fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), RequestError> {
    if value.is_finite() && value >= min && value <= max {
        return Ok(());
    }
    Err(RequestError::OutOfRange { field, min, max })
}

impl ProveRequest {
    /// The pinned statement every candidate is checked against.
    pub fn pinned(&self) -> Result<PinnedStatement, RequestError> {
        let name = theorem_name(&self.statement)
            .ok_or_else(|| RequestError::Statement("it must start with `theorem NAME`".into()))?;
        let pinned = PinnedStatement {
            name: name.to_string(),
            statement: self.statement.trim().to_string(),
            preamble: (!self.preamble.trim().is_empty()).then(|| self.preamble.clone()),
        };
        pinned
            .signature()
            .map_err(|error| RequestError::Statement(error.to_string()))?;
        Ok(pinned)
    }

    /// Refuse what no job could run, or what passes the farm's ceilings.
    pub fn validate(&self, ceiling: &BudgetCeiling, max_timeout: f64) -> Result<(), RequestError> {
        for (field, text) in [
            ("statement", &self.statement),
            ("preamble", &self.preamble),
            ("header", &self.header),
        ] {
            if text.len() > MAX_TEXT_BYTES {
                return Err(RequestError::TooLarge {
                    field,
                    size: text.len(),
                    limit: MAX_TEXT_BYTES,
                });
            }
            if text.contains('\0') {
                return Err(RequestError::NulByte { field });
            }
        }
        if self.statement.contains(":=") {
            return Err(RequestError::Statement(
                "it must not hold a proof (`:=`): the model writes the proof".into(),
            ));
        }
        if self.policy.pinned.is_some() {
            return Err(RequestError::PolicyPinned);
        }
        self.pinned()?;
        in_range(
            "strategy.n",
            self.strategy.n as f64,
            1.0,
            MAX_CANDIDATES_PER_ROUND as f64,
        )?;
        in_range(
            "strategy.rounds",
            self.strategy.rounds as f64,
            1.0,
            MAX_ROUNDS as f64,
        )?;
        if let Some(premises) = &self.premises {
            in_range("premises.k", premises.k as f64, 0.0, MAX_PREMISES as f64)?;
        }
        in_range(
            "budget.candidates",
            self.budget.candidates as f64,
            1.0,
            ceiling.candidates as f64,
        )?;
        in_range(
            "budget.tokens",
            self.budget.tokens as f64,
            1.0,
            ceiling.tokens as f64,
        )?;
        in_range(
            "budget.cpu_seconds",
            self.budget.cpu_seconds,
            0.001,
            ceiling.cpu_seconds,
        )?;
        in_range(
            "budget.wall_seconds",
            self.budget.wall_seconds,
            0.001,
            ceiling.wall_seconds,
        )?;
        if !(self.timeout_seconds.is_finite()
            && self.timeout_seconds > 0.0
            && self.timeout_seconds <= max_timeout)
        {
            return Err(RequestError::OutOfRange {
                field: "timeout_seconds",
                min: 0.0,
                max: max_timeout,
            });
        }
        Ok(())
    }
}

/// `NAME` of `theorem NAME ...` (or `lemma NAME ...`).
pub fn theorem_name(statement: &str) -> Option<&str> {
    let trimmed = statement.trim_start();
    let rest = trimmed
        .strip_prefix("theorem")
        .or_else(|| trimmed.strip_prefix("lemma"))?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == '{' || c == '[')
        .unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(statement: &str) -> ProveRequest {
        serde_json::from_value(serde_json::json!({ "statement": statement })).unwrap()
    }

    #[test]
    fn a_statement_is_a_theorem_without_a_proof() {
        let ceiling = BudgetCeiling::default();
        assert_eq!(
            request("theorem t (a : Nat) : a = a").validate(&ceiling, 600.0),
            Ok(())
        );
        assert_eq!(request("lemma l : True").pinned().unwrap().name, "l");
        for bad in [
            "def x : Nat",
            "theorem t : True := trivial",
            "theorem : True",
            "theorem t : True\0",
        ] {
            assert!(request(bad).validate(&ceiling, 600.0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn budgets_and_strategies_stay_within_the_ceilings() {
        let ceiling = BudgetCeiling::default();
        let mut asked = request("theorem t : True");
        asked.budget.candidates = ceiling.candidates + 1;
        assert!(matches!(
            asked.validate(&ceiling, 600.0),
            Err(RequestError::OutOfRange {
                field: "budget.candidates",
                ..
            })
        ));
        let mut asked = request("theorem t : True");
        asked.budget.wall_seconds = f64::NAN;
        assert!(asked.validate(&ceiling, 600.0).is_err());
        let mut asked = request("theorem t : True");
        asked.strategy.n = 0;
        assert!(asked.validate(&ceiling, 600.0).is_err());
        let mut asked = request("theorem t : True");
        asked.timeout_seconds = 601.0;
        assert!(asked.validate(&ceiling, 600.0).is_err());
    }
}
