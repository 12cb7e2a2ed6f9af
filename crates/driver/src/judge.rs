//! From what Lean said to a verdict.
//!
//! `judge` reads Lean's messages and the audit report (see `audit`) and
//! applies the policy; the screen before Lean is `screen`'s. It never trusts
//! text the snippet printed about itself.

use crate::audit::{AuditEntry, AuditError, DeclarationKind};
use leanfarm_core::policy::{is_native_auxiliary_axiom, NATIVE_DECIDE_AXIOM};
use leanfarm_core::{Policy, ReasonCode, Severity, VerdictMessage, VerdictReason};
use std::collections::BTreeMap;

/// Everything Lean said about a snippet that the verdict depends on.
pub(crate) struct Evidence {
    /// The body's messages, positions already relative to the whole snippet.
    pub messages: Vec<VerdictMessage>,
    /// The `sorry`s Lean reported, positions relative to the whole snippet.
    pub sorries: Vec<leanfarm_core::VerdictSorry>,
    /// The audit report on what the body declared (the audit's own names
    /// already left out).
    pub audit: Result<Vec<AuditEntry>, AuditError>,
    /// The pinned statement's type as a term key, elaborated in the clean
    /// base environment, when one is pinned.
    pub pinned_term: Option<Result<String, String>>,
    /// The REPL environment the body produced.
    pub body_env: u64,
}

/// The judgement: the reason the snippet is not valid (none when it is), and
/// the axioms of each declaration.
#[derive(Debug, PartialEq)]
pub(crate) struct Judgement {
    pub reason: Option<VerdictReason>,
    pub axioms: BTreeMap<String, Vec<String>>,
}

impl Judgement {
    #[cfg(test)]
    pub fn status(&self) -> leanfarm_core::CheckStatus {
        self.reason
            .as_ref()
            .map_or(leanfarm_core::CheckStatus::Valid, |reason| {
                reason.code.status()
            })
    }
}

pub(crate) fn judge(policy: &Policy, evidence: &Evidence) -> Judgement {
    let axioms: BTreeMap<String, Vec<String>> = match &evidence.audit {
        Ok(entries) => entries
            .iter()
            .map(|entry| (entry.name.clone(), entry.axioms.clone()))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    Judgement {
        reason: first_broken_rule(policy, evidence).err(),
        axioms,
    }
}

/// The rules in order; the first that fails is the verdict's reason.
fn first_broken_rule(policy: &Policy, evidence: &Evidence) -> Result<(), VerdictReason> {
    let reject = |code, message: String| Err(VerdictReason::new(code, message));
    if let Some(error) = evidence
        .messages
        .iter()
        .find(|message| message.severity == Severity::Error)
    {
        return reject(
            ReasonCode::LeanError,
            format!("line {}: {}", error.line, first_line(&error.data)),
        );
    }
    let entries = evidence.audit.as_ref().ok();
    let sorry_in_axioms = entries
        .into_iter()
        .flatten()
        .flat_map(|entry| &entry.axioms)
        .any(|axiom| axiom == "sorryAx");
    let sorry_warning = evidence.messages.iter().any(|message| {
        message.severity == Severity::Warning && message.data.contains("declaration uses `sorry`")
    });
    if !evidence.sorries.is_empty() || sorry_in_axioms || sorry_warning {
        return reject(ReasonCode::UsesSorry, "the proof uses `sorry`".into());
    }
    let entries = match &evidence.audit {
        Ok(entries) => entries,
        Err(error) => {
            return reject(
                ReasonCode::AuditFailed,
                format!("the farm could not read what the snippet declared: {error}"),
            );
        }
    };
    let theorems: Vec<&str> = entries
        .iter()
        .filter(|entry| entry.kind == DeclarationKind::Theorem)
        .map(|entry| entry.name.as_str())
        .collect();
    // The axioms the snippet may declare: those the native tactics generate
    // for a theorem the snippet itself declares, when the policy allows them.
    let generated_axiom = |name: &str| {
        policy.allow_native_decide
            && is_native_auxiliary_axiom(name)
            && theorems
                .iter()
                .any(|theorem| name.starts_with(&format!("{theorem}._native.")))
    };
    if let Some(entry) = entries
        .iter()
        .find(|entry| entry.kind == DeclarationKind::Axiom && !generated_axiom(&entry.name))
    {
        return reject(
            ReasonCode::ForbiddenDeclaration,
            format!("the snippet declares the axiom `{}`", entry.name),
        );
    }
    for entry in entries {
        for axiom in &entry.axioms {
            let allowed = policy.allowed_axioms.iter().any(|allowed| allowed == axiom)
                || (policy.allow_native_decide
                    && (axiom == NATIVE_DECIDE_AXIOM || generated_axiom(axiom)));
            if !allowed {
                return reject(
                    ReasonCode::ForbiddenAxiom,
                    format!(
                        "`{}` depends on the axiom `{axiom}`, which this policy does not allow",
                        entry.name
                    ),
                );
            }
        }
    }
    if let Some(pinned) = &policy.pinned {
        let Some(proved) = entries.iter().find(|entry| entry.name == pinned.name) else {
            return reject(
                ReasonCode::StatementMissing,
                format!("the snippet does not declare `{}`", pinned.name),
            );
        };
        let mismatch = match &evidence.pinned_term {
            _ if proved.kind != DeclarationKind::Theorem => Some(format!(
                "`{}` is a {}, not a theorem",
                pinned.name,
                proved.kind.as_str()
            )),
            Some(Ok(expected)) if &proved.term == expected => None,
            Some(Ok(_)) => Some(format!(
                "`{}` proves `{}`, which is not the pinned statement as Lean elaborates it",
                pinned.name,
                excerpt(&proved.type_text)
            )),
            Some(Err(error)) => Some(format!("the pinned statement does not elaborate: {error}")),
            None => Some("the pinned statement was not elaborated".to_string()),
        };
        if let Some(message) = mismatch {
            return reject(ReasonCode::StatementMismatch, message);
        }
    }
    Ok(())
}

/// At most 200 characters of a text that came from the snippet.
fn excerpt(text: &str) -> String {
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use leanfarm_core::{CheckStatus, PinnedStatement};

    fn entry(name: &str, kind: &str, axioms: &[&str], term: &str) -> AuditEntry {
        AuditEntry {
            name: name.to_string(),
            kind: serde_json::from_value(serde_json::Value::String(kind.into())).unwrap(),
            axioms: axioms.iter().map(|a| a.to_string()).collect(),
            type_text: term.to_string(),
            term: term.to_string(),
        }
    }

    fn evidence(entries: Vec<AuditEntry>) -> Evidence {
        Evidence {
            messages: Vec::new(),
            sorries: Vec::new(),
            audit: Ok(entries),
            pinned_term: None,
            body_env: 0,
        }
    }

    fn reason_code(judgement: &Judgement) -> &str {
        judgement.reason.as_ref().map_or("", |r| r.code.as_str())
    }

    #[test]
    fn clean_proof_with_standard_axioms_is_valid() {
        let judgement = judge(
            &Policy::default(),
            &evidence(vec![entry("t", "theorem", &["propext", "Quot.sound"], "x")]),
        );
        assert_eq!(judgement.status(), CheckStatus::Valid);
        assert_eq!(judgement.axioms["t"], vec!["propext", "Quot.sound"]);
    }

    #[test]
    fn errors_come_first() {
        let mut evidence = evidence(vec![]);
        evidence.messages.push(VerdictMessage {
            severity: Severity::Error,
            line: 3,
            column: 2,
            end_line: None,
            end_column: None,
            data: "unknown identifier 'x'\nmore".into(),
        });
        evidence.sorries.push(leanfarm_core::VerdictSorry {
            line: 1,
            column: 0,
            goal: "⊢ False".into(),
        });
        let judgement = judge(&Policy::default(), &evidence);
        assert_eq!(judgement.status(), CheckStatus::LeanError);
        assert_eq!(
            judgement.reason.unwrap().message,
            "line 3: unknown identifier 'x'"
        );
    }

    #[test]
    fn sorry_reached_only_through_the_axioms_is_caught() {
        let judgement = judge(
            &Policy::default(),
            &evidence(vec![entry("t", "theorem", &["sorryAx"], "x")]),
        );
        assert_eq!(judgement.status(), CheckStatus::Sorry);
    }

    #[test]
    fn a_missing_audit_is_never_valid() {
        let mut evidence = evidence(vec![]);
        evidence.audit = Err(AuditError::Missing);
        let judgement = judge(&Policy::default(), &evidence);
        assert_eq!(judgement.status(), CheckStatus::LeanError);
        assert_eq!(reason_code(&judgement), "audit_failed");
    }

    #[test]
    fn declared_axioms_and_foreign_axioms_are_rejected() {
        let spoof = entry(
            "t._native.native_decide.ax_1_1",
            "axiom",
            &["t._native.native_decide.ax_1_1"],
            "False",
        );
        let policy = Policy {
            allow_native_decide: true,
            ..Policy::default()
        };
        let judgement = judge(&policy, &evidence(vec![spoof]));
        assert_eq!(reason_code(&judgement), "forbidden_declaration");

        let judgement = judge(
            &Policy::default(),
            &evidence(vec![entry("t", "theorem", &["cheat"], "x")]),
        );
        assert_eq!(reason_code(&judgement), "forbidden_axiom");
    }

    #[test]
    fn native_decide_axioms_follow_the_policy() {
        // The audit sees both the theorem and the auxiliary axiom the native
        // tactic declared for it, under either naming scheme.
        for auxiliary in [
            "t._native.native_decide.ax_1_1",
            "t._native.decide.ax_1",
            "t._native.bv_decide.ax_2",
        ] {
            let entries = || {
                vec![
                    entry("t", "theorem", &["Lean.ofReduceBool", auxiliary], "x"),
                    entry(auxiliary, "axiom", &[auxiliary], "x"),
                ]
            };
            assert_eq!(
                reason_code(&judge(&Policy::default(), &evidence(entries()))),
                "forbidden_declaration"
            );
            let policy = Policy {
                allow_native_decide: true,
                ..Policy::default()
            };
            assert_eq!(
                judge(&policy, &evidence(entries())).status(),
                CheckStatus::Valid,
                "{auxiliary}"
            );
        }
    }

    #[test]
    fn an_auxiliary_axiom_must_belong_to_a_theorem_of_the_snippet() {
        let policy = Policy {
            allow_native_decide: true,
            ..Policy::default()
        };
        for (owner_kind, auxiliary) in [
            ("def", "t._native.native_decide.ax_1_1"),
            ("theorem", "u._native.native_decide.ax_1_1"),
            ("theorem", "t._native.native_decide.ax_1_1.cheat"),
            ("theorem", "t.native_decide.ax_1_1"),
        ] {
            let entries = vec![
                entry("t", owner_kind, &[auxiliary], "x"),
                entry(auxiliary, "axiom", &[auxiliary], "False"),
            ];
            assert_eq!(
                reason_code(&judge(&policy, &evidence(entries))),
                "forbidden_declaration",
                "{owner_kind} {auxiliary}"
            );
        }
    }

    #[test]
    fn internal_and_private_declarations_are_judged_like_any_other() {
        for name in ["_private.Snippet.0.hidden", "t._proof_1", "_aux.cheat"] {
            let judgement = judge(
                &Policy::default(),
                &evidence(vec![
                    entry("t", "theorem", &[], "x"),
                    entry(name, "theorem", &["sorryAx"], "False"),
                ]),
            );
            assert_eq!(reason_code(&judgement), "uses_sorry", "{name}");
            let judgement = judge(
                &Policy::default(),
                &evidence(vec![entry(name, "axiom", &[name], "False")]),
            );
            assert_eq!(reason_code(&judgement), "forbidden_declaration", "{name}");
        }
    }

    #[test]
    fn pinned_statement_must_match() {
        let policy = Policy {
            pinned: Some(PinnedStatement {
                name: "t".into(),
                statement: "theorem t : 1 = 1".into(),
                preamble: None,
            }),
            ..Policy::default()
        };
        let mut matching = evidence(vec![entry("t", "theorem", &[], ": 1 = 1")]);
        matching.pinned_term = Some(Ok(": 1 = 1".into()));
        assert_eq!(judge(&policy, &matching).status(), CheckStatus::Valid);

        let mut weakened = evidence(vec![entry("t", "theorem", &[], ": True")]);
        weakened.pinned_term = Some(Ok(": 1 = 1".into()));
        assert_eq!(
            reason_code(&judge(&policy, &weakened)),
            "statement_mismatch"
        );

        let mut as_def = evidence(vec![entry("t", "def", &[], ": 1 = 1")]);
        as_def.pinned_term = Some(Ok(": 1 = 1".into()));
        assert_eq!(reason_code(&judge(&policy, &as_def)), "statement_mismatch");

        let mut missing = evidence(vec![entry("other", "theorem", &[], ": 1 = 1")]);
        missing.pinned_term = Some(Ok(": 1 = 1".into()));
        assert_eq!(reason_code(&judge(&policy, &missing)), "statement_missing");
    }
}
