//! From what Lean said to a verdict.
//!
//! Two stages. `prescreen` is a cheap textual filter run before Lean: it
//! rejects snippets that use a forbidden command or option, and it is never
//! the reason a snippet is *valid*. `judge` reads Lean's messages and the
//! audit report (see `audit`) and applies the policy. Neither stage ever
//! trusts text the snippet printed about itself.

use crate::audit::{AuditEntry, AuditError};
use leanfarm_core::policy::NATIVE_DECIDE_AXIOM;
use leanfarm_core::{CheckStatus, Policy, VerdictMessage, VerdictReason};
use std::collections::BTreeMap;

/// Keywords that are forbidden whatever the policy says: each is a known way
/// to make Lean accept what it has not checked.
const ALWAYS_FORBIDDEN: &[(&str, &str)] = &[
    ("axiom", "declares a new axiom"),
    ("skipKernelTC", "turns off the kernel's type checking"),
    (
        "implemented_by",
        "replaces a definition's code with another's",
    ),
    ("extern", "replaces a definition's code with foreign code"),
    ("unsafe", "declares unsafe code"),
];

/// Commands that run or extend the elaborator: forbidden unless the policy
/// allows metaprogramming, because they are how a snippet reaches the
/// checker's own machinery.
const METAPROGRAMMING: &[&str] = &[
    "#eval",
    "#exit",
    "run_cmd",
    "run_elab",
    "run_meta",
    "run_tac",
    "elab",
    "elab_rules",
    "macro",
    "macro_rules",
    "syntax",
    "declare_syntax_cat",
    "initialize",
    "builtin_initialize",
    "command_elab",
    "term_elab",
    "tactic_elab",
    "builtin_command_elab",
    "builtin_term_elab",
    "builtin_tactic",
    "env_extension",
    "register_option",
];

/// Remove comments and string literals (keeping line structure) so that a
/// forbidden word inside a comment or a string is not mistaken for code.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut index = 0;
    let mut comment_depth = 0usize;
    while index < chars.len() {
        let current = chars[index];
        let next = chars.get(index + 1).copied();
        if comment_depth > 0 {
            if current == '/' && next == Some('-') {
                comment_depth += 1;
                index += 2;
            } else if current == '-' && next == Some('/') {
                comment_depth -= 1;
                index += 2;
            } else {
                if current == '\n' {
                    out.push('\n');
                }
                index += 1;
            }
            continue;
        }
        match (current, next) {
            ('/', Some('-')) => {
                comment_depth = 1;
                index += 2;
            }
            ('-', Some('-')) => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            ('"', _) => {
                index += 1;
                while index < chars.len() && chars[index] != '"' {
                    if chars[index] == '\\' {
                        index += 1;
                    }
                    index += 1;
                }
                index += 1;
                out.push_str("\"\"");
            }
            _ => {
                out.push(current);
                index += 1;
            }
        }
    }
    out
}

/// Split code into identifier-like words; `.` and `#` and `_` stay inside a
/// word, so `set_option debug.skipKernelTC` yields `debug.skipKernelTC`.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| {
        !(c.is_alphanumeric()
            || c == '_'
            || c == '.'
            || c == '#'
            || c == '\''
            || c == '!'
            || c == '?')
    })
    .filter(|word| !word.is_empty())
}

/// Reject a snippet before Lean runs if it uses a forbidden command or option.
pub(crate) fn prescreen(body: &str, policy: &Policy) -> Option<VerdictReason> {
    let code = code_only(body);
    let mut previous_word = "";
    for word in words(&code) {
        if previous_word == "set_option" && word.starts_with("debug.") {
            return Some(VerdictReason::new(
                "forbidden_command",
                format!(
                    "`set_option {word}` is not allowed: debug options can switch off checking"
                ),
            ));
        }
        previous_word = word;
        for part in word.split('.') {
            if let Some((keyword, why)) = ALWAYS_FORBIDDEN
                .iter()
                .find(|(keyword, _)| *keyword == part)
            {
                return Some(VerdictReason::new(
                    "forbidden_command",
                    format!("`{keyword}` is not allowed: it {why}"),
                ));
            }
        }
        if !policy.allow_native_decide && word == "native_decide" {
            return Some(VerdictReason::new(
                "forbidden_command",
                "`native_decide` is not allowed by this policy (allow_native_decide is off)",
            ));
        }
        if !policy.allow_metaprogramming && METAPROGRAMMING.contains(&word) {
            return Some(VerdictReason::new(
                "forbidden_command",
                format!("`{word}` is not allowed: metaprogramming is off in this policy"),
            ));
        }
    }
    None
}

/// Whether an axiom name is one that `native_decide` itself adds.
fn is_native_decide_axiom(axiom: &str) -> bool {
    axiom == NATIVE_DECIDE_AXIOM || axiom.contains("._native.native_decide.ax_")
}

/// Everything Lean said about a snippet that the verdict depends on.
pub(crate) struct Evidence {
    /// The body's messages, positions already relative to the whole snippet.
    pub messages: Vec<VerdictMessage>,
    /// The `sorry`s Lean reported, positions relative to the whole snippet.
    pub sorries: Vec<leanfarm_core::VerdictSorry>,
    /// The audit report on what the body declared.
    pub audit: Result<Vec<AuditEntry>, AuditError>,
    /// The pinned statement's type as Lean elaborates it, when one is pinned.
    pub pinned_type: Option<Result<String, String>>,
}

/// The judgement: status, reason and the axioms of each declaration.
#[derive(Debug, PartialEq)]
pub(crate) struct Judgement {
    pub status: CheckStatus,
    pub reason: Option<VerdictReason>,
    pub axioms: BTreeMap<String, Vec<String>>,
}

pub(crate) fn judge(policy: &Policy, evidence: &Evidence) -> Judgement {
    let axioms: BTreeMap<String, Vec<String>> = match &evidence.audit {
        Ok(entries) => entries
            .iter()
            .map(|entry| (entry.name.clone(), entry.axioms.clone()))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let verdict = |status, reason| Judgement {
        status,
        reason,
        axioms: axioms.clone(),
    };

    if let Some(error) = evidence
        .messages
        .iter()
        .find(|message| message.severity == "error")
    {
        return verdict(
            CheckStatus::LeanError,
            Some(VerdictReason::new(
                "lean_error",
                format!("line {}: {}", error.line, first_line(&error.data)),
            )),
        );
    }
    let sorry_in_axioms = axioms.values().flatten().any(|axiom| axiom == "sorryAx");
    let sorry_warning = evidence.messages.iter().any(|message| {
        message.severity == "warning" && message.data.contains("declaration uses `sorry`")
    });
    if !evidence.sorries.is_empty() || sorry_in_axioms || sorry_warning {
        return verdict(
            CheckStatus::Sorry,
            Some(VerdictReason::new("uses_sorry", "the proof uses `sorry`")),
        );
    }
    let entries = match &evidence.audit {
        Ok(entries) => entries,
        Err(error) => {
            return verdict(
                CheckStatus::LeanError,
                Some(VerdictReason::new(
                    "audit_failed",
                    format!("the farm could not read what the snippet declared: {error}"),
                )),
            );
        }
    };
    if let Some(entry) = entries.iter().find(|entry| entry.kind == "axiom") {
        return verdict(
            CheckStatus::LeanError,
            Some(VerdictReason::new(
                "forbidden_declaration",
                format!("the snippet declares the axiom `{}`", entry.name),
            )),
        );
    }
    for entry in entries {
        for axiom in &entry.axioms {
            let allowed = policy.allowed_axioms.iter().any(|allowed| allowed == axiom)
                || (policy.allow_native_decide && is_native_decide_axiom(axiom));
            if !allowed {
                return verdict(
                    CheckStatus::LeanError,
                    Some(VerdictReason::new(
                        "forbidden_axiom",
                        format!(
                            "`{}` depends on the axiom `{axiom}`, which this policy does not allow",
                            entry.name
                        ),
                    )),
                );
            }
        }
    }
    if let Some(pinned) = &policy.pinned {
        let Some(proved) = entries.iter().find(|entry| entry.name == pinned.name) else {
            return verdict(
                CheckStatus::LeanError,
                Some(VerdictReason::new(
                    "statement_missing",
                    format!("the snippet does not declare `{}`", pinned.name),
                )),
            );
        };
        let reason = match &evidence.pinned_type {
            Some(Ok(expected)) if proved.kind == "theorem" && &proved.type_text == expected => None,
            Some(Ok(expected)) if proved.kind != "theorem" => Some(format!(
                "`{}` is a {}, not a theorem (expected `{expected}`)",
                pinned.name, proved.kind
            )),
            Some(Ok(expected)) => Some(format!(
                "`{}` proves `{}`, not the pinned statement `{expected}`",
                pinned.name, proved.type_text
            )),
            Some(Err(error)) => Some(format!("the pinned statement does not elaborate: {error}")),
            None => Some("the pinned statement was not elaborated".to_string()),
        };
        if let Some(message) = reason {
            return verdict(
                CheckStatus::LeanError,
                Some(VerdictReason::new("statement_mismatch", message)),
            );
        }
    }
    verdict(CheckStatus::Valid, None)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use leanfarm_core::PinnedStatement;

    fn entry(name: &str, kind: &str, axioms: &[&str], type_text: &str) -> AuditEntry {
        AuditEntry {
            name: name.to_string(),
            kind: kind.to_string(),
            axioms: axioms.iter().map(|a| a.to_string()).collect(),
            type_text: type_text.to_string(),
        }
    }

    fn evidence(entries: Vec<AuditEntry>) -> Evidence {
        Evidence {
            messages: Vec::new(),
            sorries: Vec::new(),
            audit: Ok(entries),
            pinned_type: None,
        }
    }

    fn reason_code(judgement: &Judgement) -> &str {
        judgement
            .reason
            .as_ref()
            .map(|r| r.code.as_str())
            .unwrap_or("")
    }

    #[test]
    fn prescreen_rejects_forbidden_words_in_code() {
        let policy = Policy::default();
        for (snippet, word) in [
            (
                "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim",
                "axiom",
            ),
            (
                "set_option debug.skipKernelTC true\ntheorem t : True := trivial",
                "skipKernelTC",
            ),
            (
                "set_option debug.byAsSorry true in\ntheorem t : False := by simp",
                "debug.byAsSorry",
            ),
            ("theorem t : 2 + 2 = 4 := by native_decide", "native_decide"),
            ("@[implemented_by f] def g : Nat := 1", "implemented_by"),
            ("elab \"#print \" \"axioms\" : command => pure ()", "elab"),
            (
                "macro_rules | `(tactic| trivial) => `(tactic| sorry)",
                "macro_rules",
            ),
            ("#eval IO.println \"hi\"", "#eval"),
            ("run_cmd Lean.logInfo \"x\"", "run_cmd"),
        ] {
            let reason = prescreen(snippet, &policy).unwrap_or_else(|| panic!("{snippet} passed"));
            assert_eq!(reason.code, "forbidden_command");
            assert!(
                reason.message.contains(word),
                "{} should name {word}",
                reason.message
            );
        }
    }

    #[test]
    fn prescreen_ignores_comments_strings_and_longer_identifiers() {
        let policy = Policy::default();
        assert_eq!(
            prescreen("def debug := 1\ntheorem t : debug = 1 := rfl", &policy),
            None
        );
        let snippet = "-- no axiom here\n/- nor /- here: axiom -/ elab -/\ntheorem axiom_free (s : String) (h : s = \"axiom\") : s = s := rfl\ntheorem t : True := by decide";
        assert_eq!(prescreen(snippet, &policy), None);
    }

    #[test]
    fn prescreen_honours_the_policy_switches() {
        let policy = Policy {
            allow_native_decide: true,
            allow_metaprogramming: true,
            ..Policy::default()
        };
        assert_eq!(
            prescreen("theorem t : 2 + 2 = 4 := by native_decide", &policy),
            None
        );
        assert_eq!(prescreen("#eval 1 + 1", &policy), None);
        assert!(prescreen("axiom a : False", &policy).is_some());
    }

    #[test]
    fn clean_proof_with_standard_axioms_is_valid() {
        let judgement = judge(
            &Policy::default(),
            &evidence(vec![entry("t", "theorem", &["propext", "Quot.sound"], "x")]),
        );
        assert_eq!(judgement.status, CheckStatus::Valid);
        assert_eq!(judgement.axioms["t"], vec!["propext", "Quot.sound"]);
    }

    #[test]
    fn errors_come_first() {
        let mut evidence = evidence(vec![]);
        evidence.messages.push(VerdictMessage {
            severity: "error".into(),
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
        assert_eq!(judgement.status, CheckStatus::LeanError);
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
        assert_eq!(judgement.status, CheckStatus::Sorry);
    }

    #[test]
    fn a_missing_audit_is_never_valid() {
        let mut evidence = evidence(vec![]);
        evidence.audit = Err(AuditError::Missing);
        let judgement = judge(&Policy::default(), &evidence);
        assert_eq!(judgement.status, CheckStatus::LeanError);
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
        let entries = || {
            vec![entry(
                "t",
                "theorem",
                &["Lean.ofReduceBool", "t._native.native_decide.ax_1_1"],
                "x",
            )]
        };
        assert_eq!(
            judge(&Policy::default(), &evidence(entries())).status,
            CheckStatus::LeanError
        );
        let policy = Policy {
            allow_native_decide: true,
            ..Policy::default()
        };
        assert_eq!(
            judge(&policy, &evidence(entries())).status,
            CheckStatus::Valid
        );
    }

    #[test]
    fn pinned_statement_must_match() {
        let policy = Policy {
            pinned: Some(PinnedStatement {
                name: "t".into(),
                statement: "theorem t : 1 = 1".into(),
            }),
            ..Policy::default()
        };
        let mut matching = evidence(vec![entry("t", "theorem", &[], ": 1 = 1")]);
        matching.pinned_type = Some(Ok(": 1 = 1".into()));
        assert_eq!(judge(&policy, &matching).status, CheckStatus::Valid);

        let mut weakened = evidence(vec![entry("t", "theorem", &[], ": True")]);
        weakened.pinned_type = Some(Ok(": 1 = 1".into()));
        assert_eq!(
            reason_code(&judge(&policy, &weakened)),
            "statement_mismatch"
        );

        let mut as_def = evidence(vec![entry("t", "def", &[], ": 1 = 1")]);
        as_def.pinned_type = Some(Ok(": 1 = 1".into()));
        assert_eq!(reason_code(&judge(&policy, &as_def)), "statement_mismatch");

        let mut missing = evidence(vec![entry("other", "theorem", &[], ": 1 = 1")]);
        missing.pinned_type = Some(Ok(": 1 = 1".into()));
        assert_eq!(reason_code(&judge(&policy, &missing)), "statement_missing");
    }
}
