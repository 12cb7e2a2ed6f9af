//! The `dummy` backend: deterministic candidates, for tests, benchmarks and
//! load. Candidate number `k` of a job (from 1) is the route's right proof
//! when `k` is `solve_on`, else a wrong one that carries a lean-sim `error`
//! directive (under real Lean it fails too: `lean_sim_error` is no tactic).
//! A `candidates_file` (one JSON string per line) replaces the rule: line
//! `k` (cycling) is candidate `k`.

use super::{estimate_tokens, ModelCall, ModelReply, RouteConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DummyRule {
    /// The candidate (from 1) that is right; 0: none ever is.
    #[serde(default = "default_solve_on")]
    pub solve_on: u64,
    /// The right proof.
    #[serde(default = "default_proof")]
    pub proof: String,
    /// Candidates, one JSON string per line, used in turn instead of the rule.
    #[serde(default)]
    pub candidates_file: Option<PathBuf>,
    /// Extra lines put into every wrong candidate (e.g. `-- sim: sleep 500`).
    #[serde(default)]
    pub wrong_extra: String,
}

fn default_solve_on() -> u64 {
    1
}
fn default_proof() -> String {
    "by\n  simp".to_string()
}

impl Default for DummyRule {
    fn default() -> DummyRule {
        DummyRule {
            solve_on: default_solve_on(),
            proof: default_proof(),
            candidates_file: None,
            wrong_extra: String::new(),
        }
    }
}

impl DummyRule {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(path) = &self.candidates_file {
            let candidates = read_candidates(path)?;
            if candidates.is_empty() {
                return Err(format!("{} holds no candidate", path.display()));
            }
        }
        Ok(())
    }
}

fn read_candidates(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str::<String>(line).map_err(|error| {
                format!(
                    "{} line {}: not a JSON string: {error}",
                    path.display(),
                    index + 1
                )
            })
        })
        .collect()
}

pub(super) fn answer(config: &RouteConfig, call: &ModelCall) -> ModelReply {
    let rule = &config.dummy;
    let number = call.attempt_number.max(1);
    let proof = match rule.candidates_file.as_ref().map(read_candidates) {
        Some(Ok(candidates)) if !candidates.is_empty() => {
            candidates[((number - 1) % candidates.len() as u64) as usize].clone()
        }
        _ if number == rule.solve_on => rule.proof.clone(),
        _ => {
            let mut wrong =
                format!("by\n  -- sim: error dummy candidate {number} is wrong\n  lean_sim_error");
            for line in rule.wrong_extra.lines() {
                wrong.push_str("\n  ");
                wrong.push_str(line);
            }
            wrong
        }
    };
    let text = format!("```lean\n{proof}\n```");
    let prompt: String = call
        .messages
        .iter()
        .map(|message| message.content.as_str())
        .collect();
    ModelReply {
        prompt_tokens: estimate_tokens(&prompt),
        completion_tokens: estimate_tokens(&text),
        text,
        model: config.model.clone(),
        cost: 0.0,
        calls: 1,
    }
}
