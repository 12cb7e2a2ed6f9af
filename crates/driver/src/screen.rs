//! The screen: what a snippet's body may contain, decided before any Lean
//! process sees it, from the tokens and commands of Lean's own lexical
//! grammar (`lean_syntax`).
//!
//! Under the default policy it is an allow-list, not a deny-list: every
//! command, modifier, attribute and `set_option` must be one a proof needs
//! (`ALLOWED_COMMANDS`, `ALLOWED_MODIFIERS`, `ALLOWED_ATTRIBUTES`,
//! `ALLOWED_OPTIONS`); anything else, including a word the lexer cannot
//! place, is `forbidden_command`. Terms and tactics that run code at
//! elaboration (`TERM_ESCAPES`) are refused wherever they stand, inside
//! strings' interpolated code too. `allow_metaprogramming` lifts the lists;
//! a few things stay forbidden whatever the policy (`ALWAYS_FORBIDDEN`).
//!
//! The screen only ever refuses: passing it proves nothing, and the verdict
//! still rests on what Lean and the audit report. It must never accept a
//! body it cannot lex.

use lean_syntax::{Body, CommandHead, TokenKind};
use leanfarm_core::{Policy, ReasonCode, VerdictReason};

/// Commands a proof needs. `lemma` is Mathlib's `theorem`; `/-!` is a
/// module doc; `attribute [...]`'s attributes are screened like `@[...]`.
const ALLOWED_COMMANDS: &[&str] = &[
    "theorem",
    "lemma",
    "example",
    "def",
    "abbrev",
    "instance",
    "structure",
    "class",
    "inductive",
    "open",
    "namespace",
    "section",
    "end",
    "variable",
    "universe",
    "set_option",
    "attribute",
    "/-!",
];

/// Modifiers a proof may put before a declaration (`unsafe` and `partial`
/// are not among them: they let code stand in for a proof).
const ALLOWED_MODIFIERS: &[&str] = &[
    "private",
    "protected",
    "noncomputable",
    "nonrec",
    "local",
    "scoped",
];

/// Attributes that only tag a declaration for the elaborator's own
/// procedures; none of them runs or replaces code.
const ALLOWED_ATTRIBUTES: &[&str] = &[
    "simp",
    "ext",
    "reducible",
    "irreducible",
    "semireducible",
    "instance",
    "refl",
    "symm",
    "trans",
    "congr",
    "norm_cast",
    "push_cast",
    "elab_as_elim",
    "induction_eliminator",
    "cases_eliminator",
    "coe",
    "inherit_doc",
    "nolint",
    "deprecated",
    "match_pattern",
    "gcongr",
    "mono",
    "continuity",
    "measurability",
    "fun_prop",
];

/// Options a proof may set: resource limits of the elaborator, implicit
/// arguments, printing and linters. Options outside this list (`debug.*`
/// among them: `debug.skipKernelTC` turns the kernel off) are refused.
const ALLOWED_OPTIONS: &[&str] = &[
    "maxHeartbeats",
    "maxRecDepth",
    "synthInstance.maxHeartbeats",
    "synthInstance.maxSize",
    "autoImplicit",
    "relaxedAutoImplicit",
    "exponentiation.threshold",
];

/// Option families a proof may set, by prefix.
const ALLOWED_OPTION_PREFIXES: &[&str] = &["linter.", "pp."];

/// Terms and tactics that run code while the snippet elaborates.
const TERM_ESCAPES: &[&str] = &["by_elab", "run_tac", "run_elab", "run_meta"];

/// Forbidden whatever the policy says: each makes Lean accept what its
/// kernel has not checked, or runs other code in place of a definition.
const ALWAYS_FORBIDDEN: &[(&str, &str)] = &[
    ("axiom", "declares a new axiom"),
    (
        "implemented_by",
        "replaces a definition's code with another's",
    ),
    ("extern", "replaces a definition's code with foreign code"),
    ("unsafe", "declares unsafe code"),
];

/// The native computation tactics, allowed only with `allow_native_decide`.
const NATIVE_TACTICS: &[&str] = &["native_decide", "bv_decide"];

fn forbidden(message: String) -> Option<VerdictReason> {
    Some(VerdictReason::new(ReasonCode::ForbiddenCommand, message))
}

/// Refuse a body that uses anything the policy does not allow; `None` when
/// it passes. `source` is the body as the REPL will get it.
pub(crate) fn screen(source: &str, policy: &Policy) -> Option<VerdictReason> {
    let body = match lean_syntax::body(source) {
        Ok(body) => body,
        Err(error) => {
            return Some(VerdictReason::new(
                ReasonCode::LeanError,
                format!("the snippet is not lexically valid Lean: {error}"),
            ))
        }
    };
    screen_tokens(source, &body, policy)
        .or_else(|| screen_commands(source, &body, policy))
        .or_else(|| screen_attributes(&body, policy))
}

fn screen_tokens(source: &str, body: &Body, policy: &Policy) -> Option<VerdictReason> {
    for (index, token) in body.tokens.iter().enumerate() {
        if token.kind != TokenKind::Identifier && token.kind != TokenKind::HashKeyword {
            continue;
        }
        let text = token.text(source);
        let line = token.start.line;
        for part in text.split('.') {
            if let Some((word, why)) = ALWAYS_FORBIDDEN.iter().find(|(word, _)| *word == part) {
                return forbidden(format!("line {line}: `{word}` is not allowed: it {why}"));
            }
        }
        let native_option = text == "native"
            && index >= 2
            && body.tokens[index - 1].text(source) == "+"
            && body.tokens[index - 2].text(source) == "decide";
        if !policy.allow_native_decide && (NATIVE_TACTICS.contains(&text) || native_option) {
            return forbidden(format!(
                "line {line}: `{}` is not allowed by this policy (allow_native_decide is off)",
                if native_option {
                    "decide +native"
                } else {
                    text
                }
            ));
        }
        if !policy.allow_metaprogramming && TERM_ESCAPES.contains(&text) {
            return forbidden(format!(
                "line {line}: `{text}` runs code while the snippet elaborates; metaprogramming is off in this policy"
            ));
        }
    }
    None
}

fn screen_commands(source: &str, body: &Body, policy: &Policy) -> Option<VerdictReason> {
    for command in &body.commands {
        for (depth, head) in command.heads.iter().enumerate() {
            // Inside `set_option ... in` / `open ... in`, a word that is not a
            // command keyword is a term or tactic, not a command.
            if depth > 0 && !head.keyword_is_known {
                continue;
            }
            if let Some(reason) = screen_head(source, head, policy) {
                return Some(reason);
            }
        }
    }
    None
}

fn screen_head(_source: &str, head: &CommandHead, policy: &Policy) -> Option<VerdictReason> {
    let line = head.start.line;
    if let Some(option) = &head.set_option {
        let allowed = ALLOWED_OPTIONS.contains(&option.name.as_str())
            || ALLOWED_OPTION_PREFIXES
                .iter()
                .any(|prefix| option.name.starts_with(prefix));
        if option.name.starts_with("debug.") {
            return forbidden(format!(
                "line {line}: `set_option {}` is not allowed: debug options can switch off checking",
                option.name
            ));
        }
        if !allowed && !policy.allow_metaprogramming {
            return forbidden(format!(
                "line {line}: `set_option {}` is not among the options a proof may set",
                option.name
            ));
        }
    }
    if policy.allow_metaprogramming {
        return None;
    }
    if let Some(modifier) = head
        .modifiers
        .iter()
        .find(|modifier| !ALLOWED_MODIFIERS.contains(&modifier.as_str()))
    {
        return forbidden(format!(
            "line {line}: the modifier `{modifier}` is not allowed: metaprogramming is off in this policy"
        ));
    }
    let keyword = head.keyword.as_str();
    if ALLOWED_COMMANDS.contains(&keyword) {
        return None;
    }
    let what = if keyword.is_empty() {
        "an unfinished command".to_string()
    } else if head.keyword_is_known {
        format!("the command `{keyword}`")
    } else {
        format!("`{keyword}` at the start of a line, read as a command (indent it if it continues the previous declaration)")
    };
    forbidden(format!(
        "line {line}: {what} is not allowed: only declarations, `open`, `namespace`, `section`, `variable`, `universe` and `set_option` are, unless the policy allows metaprogramming"
    ))
}

fn screen_attributes(body: &Body, policy: &Policy) -> Option<VerdictReason> {
    if policy.allow_metaprogramming {
        return None;
    }
    let attribute = body
        .attributes
        .iter()
        .find(|attribute| !ALLOWED_ATTRIBUTES.contains(&attribute.name.as_str()))?;
    let mut text: String = attribute.text.chars().take(60).collect();
    if text.len() < attribute.text.len() {
        text.push('…');
    }
    forbidden(format!(
        "line {}: the attribute `{text}` is not allowed: it is not one that only tags a declaration, and metaprogramming is off in this policy",
        attribute.start.line
    ))
}

/// Refuse a tactic that a body could not contain, under the same policy:
/// the tactic is screened as the proof of a theorem, in the place it takes
/// in an assembled proof, so every list above applies to it (a tactic that
/// runs code, a `set_option` outside the list, `native_decide` without
/// `allow_native_decide`, a command smuggled in after it, text that does not
/// lex). Line numbers in the reason are the tactic's own.
pub(crate) fn screen_tactic(tactic: &str, policy: &Policy) -> Option<VerdictReason> {
    if tactic.trim().is_empty() {
        return Some(VerdictReason::new(
            ReasonCode::LeanError,
            "the tactic is empty",
        ));
    }
    if let Some(control) = tactic
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Some(VerdictReason::new(
            ReasonCode::LeanError,
            format!(
                "the tactic holds the control character U+{:04X}",
                control as u32
            ),
        ));
    }
    // Lean's REPL reads a tactic with the tactic parser alone, but the
    // proof assembled from it is a body, where a command word ends the
    // proof and starts a command: a tactic holds none (`open ... in` and
    // `set_option ... in` are tactics too, screened below as in a body).
    if let Ok(tokens) = lean_syntax::lex(tactic) {
        for token in &tokens {
            let text = token.text(tactic);
            let command = match token.kind {
                TokenKind::HashKeyword => true,
                TokenKind::Identifier => {
                    (lean_syntax::COMMAND_KEYWORDS.contains(&text)
                        || lean_syntax::MODIFIERS.contains(&text))
                        && text != "open"
                        && text != "set_option"
                }
                _ => false,
            };
            if command {
                return forbidden(format!(
                    "line {}: `{text}` starts a command, which a tactic cannot hold",
                    token.start.line
                ));
            }
        }
    }
    let mut wrapped = String::from("theorem leanfarm_tactic : True := by ");
    for (index, line) in tactic.lines().enumerate() {
        if index > 0 {
            // Continuation lines stay inside the proof, never at column 0.
            wrapped.push_str("\n  ");
        }
        wrapped.push_str(line);
    }
    screen(&wrapped, policy)
}

/// Whether the body declares something to check: a `theorem`, `lemma` or
/// `example`.
pub(crate) fn declares_a_theorem(source: &str) -> bool {
    lean_syntax::commands(source).is_ok_and(|commands| {
        commands.iter().any(|command| {
            matches!(
                command.innermost().keyword.as_str(),
                "theorem" | "lemma" | "example"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(source: &str, policy: &Policy) -> String {
        match screen(source, policy) {
            Some(reason) => reason.message,
            None => panic!("passed the screen: {source}"),
        }
    }

    #[test]
    fn honest_proofs_pass() {
        let policy = Policy::default();
        for source in [
            "theorem t : 1 + 1 = 2 := by decide",
            "open Nat in\ntheorem t (n : ℕ) : n + 0 = n := by simp",
            "namespace Foo\n@[simp] lemma l : True := trivial\nend Foo",
            "set_option maxHeartbeats 400000 in\ntheorem t : True := by\n  set_option maxRecDepth 1000 in\n  trivial",
            "noncomputable section\nvariable (x : ℝ)\ndef f := x\nend",
            "universe u\nstructure P (α : Type u) where\n  a : α\ninstance : Inhabited Nat := ⟨0⟩",
            "/-! A module doc. -/\n/-- A doc. -/\nexample : True := trivial",
            "theorem l : 1 = 1 := rfl\nattribute [local simp] l\nexample : True := trivial",
            "def s : String := s!\"{1 + 1} and {\"x\"}\"\ntheorem t : s = s := rfl",
            "theorem t : True := by\n  -- #eval in a comment\n  trivial",
            "def c : Char := '\"'\ntheorem t : c = c := rfl",
        ] {
            assert_eq!(screen(source, &policy), None, "{source}");
        }
    }

    #[test]
    fn commands_outside_the_list_are_refused() {
        let policy = Policy::default();
        for (source, named) in [
            ("#eval IO.println \"hi\"", "#eval"),
            ("#eval! (1 : Nat)", "#eval"),
            (
                "#guard_msgs (drop all) in\ntheorem t : False := sorry",
                "#guard_msgs",
            ),
            ("elab \"#print \" \"axioms\" : command => pure ()", "elab"),
            (
                "macro_rules | `(tactic| trivial) => `(tactic| sorry)",
                "macro_rules",
            ),
            ("simproc foo (_) := fun _ => pure .continue", "simproc"),
            ("run_cmd Lean.logInfo \"x\"", "run_cmd"),
            ("notation \"⊤\" => False", "notation"),
            ("initialize pure ()", "initialize"),
            ("#exit\ntheorem t : False := sorry", "#exit"),
        ] {
            let message = refused(source, &policy);
            assert!(message.contains(named), "{source}: {message}");
        }
    }

    #[test]
    fn attributes_and_modifiers_outside_the_list_are_refused() {
        let policy = Policy::default();
        for (source, named) in [
            ("@[implemented_by g] def f : Nat := 1", "implemented_by"),
            (
                "@[tactic trivial] def t : Lean.Elab.Tactic.Tactic := fun _ => pure ()",
                "tactic",
            ),
            (
                "@[delab app.f] def d : Lean.PrettyPrinter.Delaborator.Delab := failure",
                "delab",
            ),
            (
                "@[app_unexpander f] def u : Lean.PrettyPrinter.Unexpander := fun _ => failure",
                "app_unexpander",
            ),
            (
                "@[command_elab x] def e : Lean.Elab.Command.CommandElab := fun _ => pure ()",
                "command_elab",
            ),
            ("@[norm_num f _] def n := 1", "norm_num"),
            ("attribute [init] foo", "init"),
            ("partial def f : Nat → Nat := f", "partial"),
            ("@[simp, csimp] theorem t : True := trivial", "csimp"),
        ] {
            let message = refused(source, &policy);
            assert!(message.contains(named), "{source}: {message}");
        }
    }

    #[test]
    fn code_hidden_from_a_naive_scan_is_still_seen() {
        let policy = Policy::default();
        for (source, named) in [
            // A char literal holding a quote does not open a string.
            (
                "def c := '\"'\n#eval c\ntheorem t : True := trivial",
                "#eval",
            ),
            // Raw strings end where Lean ends them.
            ("def s := r#\"\"-/\"#\n#eval s", "#eval"),
            // Interpolated code is code.
            (
                "def s := s!\"{(by_elab pure (Lean.mkConst ``True))}\"",
                "by_elab",
            ),
            (
                "theorem t : True := by\n  run_tac pure ()\n  trivial",
                "run_tac",
            ),
            (
                "set_option debug.skipKernelTC true in\ntheorem t : False := sorry",
                "debug.skipKernelTC",
            ),
            (
                "set_option trace.Meta.synthInstance true\ntheorem t : True := trivial",
                "trace.Meta.synthInstance",
            ),
            (
                "theorem t : «axiom» = 1 := rfl\naxiom cheat : False",
                "axiom",
            ),
        ] {
            let message = refused(source, &policy);
            assert!(message.contains(named), "{source}: {message}");
        }
    }

    #[test]
    fn native_computation_follows_the_policy() {
        let mut policy = Policy::default();
        for source in [
            "theorem t : 2 + 2 = 4 := by native_decide",
            "theorem t : 2 + 2 = 4 := by decide +native",
            "theorem t (x : BitVec 8) : x &&& x = x := by bv_decide",
        ] {
            assert!(
                refused(source, &policy).contains("allow_native_decide"),
                "{source}"
            );
        }
        policy.allow_native_decide = true;
        assert_eq!(
            screen("theorem t : 2 + 2 = 4 := by native_decide", &policy),
            None
        );
    }

    #[test]
    fn metaprogramming_lifts_the_lists_but_not_the_kernel() {
        let policy = Policy {
            allow_metaprogramming: true,
            ..Policy::default()
        };
        assert_eq!(
            screen(
                "#eval 1 + 1\nelab \"x\" : term => pure (Lean.mkConst ``True)",
                &policy
            ),
            None
        );
        assert!(screen("axiom a : False", &policy).is_some());
        assert!(screen("set_option debug.skipKernelTC true", &policy).is_some());
        assert!(screen("@[implemented_by g] def f : Nat := 1", &policy).is_some());
    }

    #[test]
    fn tactics_pass_the_body_screen_and_hold_no_command() {
        let policy = Policy::default();
        for tactic in [
            "simp",
            "intro h\nexact h.left",
            "constructor\n· simp\n· omega",
            "set_option maxHeartbeats 400000 in\nsimp",
            "open Nat in\nexact succ_pos 0",
            "have h : 1 = 1 := rfl -- a comment: #eval",
            "exact \"theorem\".length",
        ] {
            assert_eq!(screen_tactic(tactic, &policy), None, "{tactic}");
        }
        for (tactic, named) in [
            ("run_tac pure ()", "run_tac"),
            ("native_decide", "native_decide"),
            (
                "set_option debug.skipKernelTC true in\nrfl",
                "debug.skipKernelTC",
            ),
            (
                "set_option trace.Meta.synthInstance true in\nsimp",
                "trace.Meta",
            ),
            ("simp\ntheorem evil : False := sorry", "theorem"),
            ("  simp\n  #eval 1", "#eval"),
            (
                "simp\n  macro_rules | `(tactic| rfl) => `(tactic| sorry)",
                "macro_rules",
            ),
            ("exact (unsafe_cast 0)\n  unsafe def x := 1", "unsafe"),
            (
                "exact s!\"{(by_elab pure (Lean.mkConst ``True))}\"",
                "by_elab",
            ),
            ("simp\r#eval 1", "U+000D"),
            ("exact \"open", "not lexically valid"),
        ] {
            let reason = screen_tactic(tactic, &policy)
                .unwrap_or_else(|| panic!("passed the screen: {tactic}"));
            assert!(
                reason.message.contains(named),
                "{tactic}: {}",
                reason.message
            );
        }
        let metaprogramming = Policy {
            allow_metaprogramming: true,
            ..Policy::default()
        };
        assert_eq!(screen_tactic("run_tac pure ()", &metaprogramming), None);
        assert!(screen_tactic("simp\n#eval 1", &metaprogramming).is_some());
    }

    #[test]
    fn a_body_that_does_not_lex_is_refused() {
        let reason = screen("def s := \"never closed", &Policy::default()).unwrap();
        assert_eq!(reason.code, ReasonCode::LeanError);
    }

    #[test]
    fn theorems_are_found_by_their_commands() {
        assert!(declares_a_theorem(
            "open Nat in\ntheorem t : True := trivial"
        ));
        assert!(declares_a_theorem("example : True := trivial"));
        assert!(!declares_a_theorem("def theorem_like := 1 -- theorem"));
        assert!(!declares_a_theorem("/- theorem t : True := trivial -/"));
        assert!(!declares_a_theorem(""));
    }
}
