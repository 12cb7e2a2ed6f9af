//! Proof search on top of the checker: a prove job asks a language model
//! for candidate proofs of one theorem, checks each through the farm's
//! ordinary check path, and stops when one is valid or a budget runs out.
//!
//! - `request`: what a caller asks for (statement, strategy, budget) and
//!   its validation; `Usage` and `Outcome`.
//! - `gateway`: named model routes over the `dummy` and `openai` backends,
//!   with retries, per-call timeouts, per-route concurrency caps and token
//!   and cost accounting.
//! - `prompt`: the messages sent to the model, and how a reply becomes a
//!   candidate.
//! - `orchestrator`: the strategies `sample` and `refine`, the budgets, and
//!   the `Farm` trait through which it submits checks and records attempts.
//! - `PremiseSource`: where premises for the prompt come from (none by default).
//!
//! This crate knows nothing of HTTP routing or SQL: the server implements
//! `Farm` on its store and its submission path.

pub mod gateway;
pub mod orchestrator;
pub mod prompt;
pub mod request;

pub use gateway::{Gateway, GatewayError, RouteConfig};
pub use orchestrator::{Attempt, Farm, FarmError, JobContext, TenantAllowance};
pub use request::{Budget, Outcome, ProveRequest, RequestError, Strategy, StrategyKind, Usage};

use serde::{Deserialize, Serialize};

/// A declaration offered to the model as a premise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Premise {
    pub name: String,
    /// `theorem`, `def`, ...
    pub kind: String,
    /// The declaration's type, as Lean prints it.
    pub signature: String,
    #[serde(default)]
    pub module: String,
    #[serde(default)]
    pub docstring: String,
}

/// Where premises come from: the retriever implements it. Without one, the
/// prompt holds no premises.
pub trait PremiseSource: Send + Sync {
    /// The `k` declarations that best match `query`, best first.
    fn search(&self, query: &str, k: usize) -> Vec<Premise>;
}
