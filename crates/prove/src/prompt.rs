//! The messages a model gets, and how its reply becomes a candidate.

use crate::gateway::ChatMessage;
use crate::request::ProveRequest;
use crate::Premise;

const SYSTEM: &str =
    "You are an expert Lean 4 prover. Given a theorem statement, write its proof: \
the term or tactic block that follows `:=`. Answer with the proof only, in one ```lean code block, \
without repeating the statement.";

/// A failed candidate shown back to the model by `refine`.
#[derive(Clone, Debug, PartialEq)]
pub struct Feedback {
    pub proof: String,
    /// Lean's messages (or the verdict's reason) on it.
    pub lean_said: String,
}

/// The conversation for one candidate.
pub fn messages(
    request: &ProveRequest,
    premises: &[Premise],
    feedback: &[Feedback],
) -> Vec<ChatMessage> {
    let mut task = String::new();
    if !request.header.trim().is_empty() {
        task.push_str(&format!(
            "Imports:\n```lean\n{}\n```\n\n",
            request.header.trim()
        ));
    }
    if !request.preamble.trim().is_empty() {
        task.push_str(&format!(
            "Preamble:\n```lean\n{}\n```\n\n",
            request.preamble.trim()
        ));
    }
    if !premises.is_empty() {
        task.push_str("Declarations that may help:\n");
        for premise in premises {
            task.push_str(&format!(
                "- {} {} : {}\n",
                premise.kind, premise.name, premise.signature
            ));
        }
        task.push('\n');
    }
    task.push_str(&format!(
        "Prove:\n```lean\n{} :=\n```",
        request.statement.trim()
    ));
    let mut messages = vec![ChatMessage::system(SYSTEM), ChatMessage::user(task)];
    for earlier in feedback {
        messages.push(ChatMessage::assistant(format!(
            "```lean\n{}\n```",
            earlier.proof
        )));
        messages.push(ChatMessage::user(format!(
            "Lean rejected this proof:\n{}\nWrite a corrected proof.",
            earlier.lean_said
        )));
    }
    messages
}

/// The proof in a model's reply: the first fenced code block if there is
/// one, without a repeated statement (anything up to its `:=`).
pub fn extract_proof(reply: &str, statement: &str) -> String {
    let mut text = reply.trim();
    if let Some(start) = text.find("```") {
        let after_fence = &text[start + 3..];
        let body_start = after_fence
            .find('\n')
            .map_or(after_fence.len(), |at| at + 1);
        let body = &after_fence[body_start..];
        text = match body.find("```") {
            Some(end) => &body[..end],
            None => body,
        };
    }
    let mut proof = text.trim();
    let statement = statement.trim();
    if !statement.is_empty() && proof.starts_with(statement) {
        proof = proof[statement.len()..].trim_start();
    }
    if let Some(rest) = proof.strip_prefix(":=") {
        proof = rest.trim_start();
    }
    proof.trim_end().to_string()
}

/// The Lean source checked for a candidate: header, preamble, then the
/// statement followed by ` := ` and the proof.
pub fn candidate_code(request: &ProveRequest, proof: &str) -> String {
    let mut code = String::new();
    if !request.header.trim().is_empty() {
        code.push_str(request.header.trim());
        code.push_str("\n\n");
    }
    if !request.preamble.trim().is_empty() {
        code.push_str(request.preamble.trim());
        code.push_str("\n\n");
    }
    code.push_str(request.statement.trim());
    code.push_str(" := ");
    code.push_str(proof);
    code.push('\n');
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premises_and_earlier_failures_reach_the_prompt() {
        let request: ProveRequest = serde_json::from_value(serde_json::json!({
            "statement": "theorem t (a b : Nat) : a + b = b + a",
            "header": "import Mathlib",
        }))
        .unwrap();
        let premises = [Premise {
            name: "Nat.add_comm".into(),
            kind: "theorem".into(),
            signature: "∀ (n m : ℕ), n + m = m + n".into(),
            module: "Init".into(),
            docstring: String::new(),
        }];
        let feedback = [Feedback {
            proof: "by rfl".into(),
            lean_said: "1:2: error: rfl failed".into(),
        }];
        let messages = messages(&request, &premises, &feedback);
        assert_eq!(messages.len(), 4);
        assert!(messages[1].content.contains("import Mathlib"));
        assert!(messages[1]
            .content
            .contains("- theorem Nat.add_comm : ∀ (n m : ℕ), n + m = m + n"));
        assert!(messages[1]
            .content
            .contains("theorem t (a b : Nat) : a + b = b + a :="));
        assert_eq!(messages[2].role, "assistant");
        assert!(messages[3].content.contains("rfl failed"));
        assert_eq!(
            candidate_code(&request, "by omega"),
            "import Mathlib\n\ntheorem t (a b : Nat) : a + b = b + a := by omega\n"
        );
    }

    #[test]
    fn a_fenced_reply_gives_its_block_without_the_statement() {
        let statement = "theorem t : 1 = 1";
        assert_eq!(
            extract_proof("Sure:\n```lean\nby rfl\n```\nDone.", statement),
            "by rfl"
        );
        assert_eq!(
            extract_proof("```lean\ntheorem t : 1 = 1 := by\n  rfl\n```", statement),
            "by\n  rfl"
        );
        assert_eq!(extract_proof(":= rfl", statement), "rfl");
        assert_eq!(extract_proof("```\nby simp", statement), "by simp");
    }
}
