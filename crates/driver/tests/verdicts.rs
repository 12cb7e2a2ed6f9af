//! Verdicts on real `lean-sim` processes: each policy rule, and each way a
//! generated proof cheats, produces the verdict it deserves.

use leanfarm_core::{CheckStatus, PinnedStatement, Policy, ReplayMode};
use leanfarm_testkit::driver::driver;
use leanfarm_testkit::{reason_code, request};

#[tokio::test]
async fn a_clean_proof_is_valid_and_names_its_axioms_and_toolchain() {
    let farm = driver();
    let code = "import Mathlib\n\ntheorem add_zero' (n : Nat) : n + 0 = n := by simp\n-- sim: axioms add_zero' propext\n";
    let verdict = farm.driver.check(&request(code)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    assert_eq!(verdict.reason(), None);
    assert_eq!(verdict.axioms["add_zero'"], vec!["propext".to_string()]);
    assert_eq!(verdict.toolchain, "lean-sim");
    assert_eq!(verdict.project, "test-project");
}

#[tokio::test]
async fn sorry_is_reported_as_sorry() {
    let farm = driver();
    let verdict = farm
        .driver
        .check(&request("theorem t : 1 = 1 := by sorry"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Sorry);
    assert_eq!(reason_code(&verdict), "uses_sorry");
}

#[tokio::test]
async fn errors_are_reported_at_the_line_of_the_submitted_snippet() {
    let farm = driver();
    let code = "import Mathlib\nimport Aesop\n\ntheorem t : 1 = 2 := by\n  -- sim: error unsolved goals\n  rfl";
    let verdict = farm.driver.check(&request(code)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::LeanError);
    let error = verdict
        .messages
        .iter()
        .find(|m| m.severity == leanfarm_core::Severity::Error)
        .expect("an error message");
    assert_eq!(error.line, 5, "the directive is on line 5 of the snippet");
    assert_eq!(error.data, "unsolved goals");
    assert_eq!(reason_code(&verdict), "lean_error");
}

#[tokio::test]
async fn cheats_caught_before_lean_runs() {
    let farm = driver();
    for code in [
        "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim",
        "set_option debug.skipKernelTC true\ntheorem t : 1 = 2 := by decide",
        "theorem t : 2 + 2 = 4 := by native_decide",
        "@[implemented_by id] def f (n : Nat) : Nat := n\ntheorem t : f 1 = 1 := rfl",
        "elab \"#print \" \"axioms\" x:ident : command => pure ()\ntheorem t : 1 = 2 := sorry",
    ] {
        let verdict = farm.driver.check(&request(code)).await.unwrap();
        assert_eq!(verdict.status(), CheckStatus::LeanError, "{code}");
        assert_eq!(reason_code(&verdict), "forbidden_command", "{code}");
    }
    assert_eq!(
        farm.driver.stats().misses,
        0,
        "no repl was started for a rejected snippet"
    );
}

#[tokio::test]
async fn sorry_reached_under_a_built_name_is_found_by_the_audit() {
    // `sorryAx` reached through a name built at run time: no `sorry` token in
    // the text, no warning from Lean, but the theorem depends on `sorryAx`.
    let farm = driver();
    let code = "theorem t : 1 = 2 := hidden_cheat\n-- sim: axioms t sorryAx\n";
    let verdict = farm.driver.check(&request(code)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Sorry, "{verdict:?}");
}

#[tokio::test]
async fn a_foreign_axiom_is_rejected_even_when_print_axioms_is_spoofed() {
    let farm = driver();
    let policy = Policy {
        allow_metaprogramming: true,
        ..Policy::default()
    };
    let code = "elab \"#print \" \"axioms\" x:ident : command => Lean.logInfo m!\"'{x}' does not depend on any axioms\"\ntheorem t : 1 = 2 := magic\n-- sim: axioms t Cheat.magic\n#print axioms t\n";
    let mut check = request(code);
    check.policy = policy;
    let verdict = farm.driver.check(&check).await.unwrap();
    let spoofed = verdict
        .messages
        .iter()
        .any(|m| m.data.contains("does not depend on any axioms"));
    assert!(
        spoofed,
        "the snippet's own #print axioms was spoofed: {:?}",
        verdict.messages
    );
    assert_eq!(verdict.status(), CheckStatus::LeanError);
    assert_eq!(reason_code(&verdict), "forbidden_axiom");
    assert_eq!(verdict.axioms["t"], vec!["Cheat.magic".to_string()]);
}

#[tokio::test]
async fn a_forged_audit_line_is_ignored() {
    let farm = driver();
    let code = "theorem t : 1 = 2 := by exact?\n-- sim: axioms t sorryAx\n-- sim: info leanfarm-audit 00000000000000000000000000000000 [{\"name\":\"t\",\"kind\":\"theorem\",\"axioms\":[],\"type\":\"x\"}]\n";
    let verdict = farm.driver.check(&request(code)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Sorry, "{verdict:?}");
}

#[tokio::test]
async fn native_decide_follows_the_policy() {
    let farm = driver();
    let mut check = request("theorem t : 2 + 2 = 4 := by native_decide");
    check.policy.allow_native_decide = true;
    let verdict = farm.driver.check(&check).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    assert!(verdict.axioms["t"].contains(&"Lean.ofReduceBool".to_string()));
}

#[tokio::test]
async fn a_changed_or_missing_pinned_statement_is_rejected() {
    let farm = driver();
    let pinned = PinnedStatement {
        name: "t".to_string(),
        statement: "theorem t (n : Nat) : n + 0 = n".to_string(),
        preamble: None,
    };
    let cases = [
        (
            "theorem t (n : Nat) : n + 0 = n := by simp",
            CheckStatus::Valid,
            "",
        ),
        (
            "theorem t (n : Nat) : n = n := rfl",
            CheckStatus::LeanError,
            "statement_mismatch",
        ),
        (
            "def t (n : Nat) : n + 0 = n := by simp",
            CheckStatus::LeanError,
            "statement_mismatch",
        ),
        (
            "theorem t' (n : Nat) : n + 0 = n := by simp",
            CheckStatus::LeanError,
            "statement_missing",
        ),
    ];
    for (code, status, code_expected) in cases {
        let mut check = request(code);
        check.policy.pinned = Some(pinned.clone());
        let verdict = farm.driver.check(&check).await.unwrap();
        assert_eq!(verdict.status(), status, "{code}: {verdict:?}");
        assert_eq!(reason_code(&verdict), code_expected, "{code}");
    }
}

#[tokio::test]
async fn stderr_noise_does_not_change_the_verdict() {
    let farm = driver();
    let verdict = farm
        .driver
        .check(&request(
            "-- sim: stderr warning: something odd\ntheorem t : True := trivial",
        ))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
}

/// The pinned statement is compared with what the snippet proves as terms:
/// what the snippet declares cannot make another statement match, and
/// honest differences of writing do not make the same statement differ.
#[tokio::test]
async fn pinned_statements_are_matched_as_terms() {
    let farm = driver();
    let pinned = |statement: &str, preamble: Option<&str>| PinnedStatement {
        name: "t".to_string(),
        statement: statement.to_string(),
        preamble: preamble.map(str::to_string),
    };
    let cases = [
        // Honest controls: valid.
        (
            pinned("theorem t (n : Nat) : n + 0 = n", None),
            "theorem t (m : Nat) : m + 0 = m := by simp",
            "",
        ),
        (
            pinned("theorem t : Real.cos Real.pi = -1 := by sorry", None),
            "open Real\ntheorem t : cos pi = -1 := by simp",
            "",
        ),
        (
            pinned("theorem t : cos pi = -1", Some("open Real")),
            "theorem t : Real.cos Real.pi = -1 := by simp",
            "",
        ),
        (
            pinned("theorem t : (let x := 1; x) = 1 :=", None),
            "theorem t : (let y := 1; y) = 1 := rfl",
            "",
        ),
        // Attacks: an instance, a shadowing definition, a namespace.
        (
            pinned("theorem t : 1 + 1 = 3", None),
            "instance : Add Nat := ⟨fun a b => Nat.add (Nat.add a b) 1⟩\ntheorem t : 1 + 1 = 3 := rfl",
            "statement_mismatch",
        ),
        (
            pinned("theorem t (n : Nat) : n = n + 1", None),
            "def Nat := Bool\ntheorem t (n : Nat) : n = n + 1 := sorry_free",
            "statement_mismatch",
        ),
        (
            pinned("theorem t : 1 = 1", None),
            "namespace Cheat\ntheorem t : 1 = 1 := rfl",
            "statement_missing",
        ),
        (
            pinned("theorem t : cos pi = -1", None),
            "open Real\ntheorem t : cos pi = -1 := by simp",
            "statement_mismatch",
        ),
    ];
    for (pinned, code, expected) in cases {
        let mut check = request(code);
        check.policy.pinned = Some(pinned);
        let verdict = farm.driver.check(&check).await.unwrap();
        assert_eq!(reason_code(&verdict), expected, "{code}: {verdict:?}");
    }
}

/// Private and internal declarations are audited like any other, and
/// nothing of the farm's own audit shows in a verdict.
#[tokio::test]
async fn every_declaration_is_audited_and_the_audit_is_invisible() {
    let farm = driver();
    let verdict = farm
        .driver
        .check(&request(
            "private theorem hidden : 1 = 2 := by exact?\n-- sim: axioms hidden sorryAx\ntheorem t : True := trivial",
        ))
        .await
        .unwrap();
    assert_eq!(reason_code(&verdict), "uses_sorry", "{verdict:?}");
    assert!(
        verdict.axioms.contains_key("_private.Sim.0.hidden"),
        "{verdict:?}"
    );

    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    assert_eq!(
        verdict.axioms.keys().collect::<Vec<_>>(),
        vec!["t"],
        "only the snippet's own declarations are reported"
    );
    let json = serde_json::to_string(&verdict).unwrap();
    assert!(
        !json.contains("LeanFarmAudit") && !json.contains("leanfarm_audit"),
        "{json}"
    );
}

/// The reason code each snippet gets, through a real lean-sim in the sandbox.
async fn reasons(snippets: &[&str]) -> Vec<(String, String)> {
    let farm = driver();
    let mut out = Vec::new();
    for code in snippets {
        let verdict = farm.driver.check(&request(code)).await.unwrap();
        out.push((code.to_string(), reason_code(&verdict).to_string()));
    }
    out
}

fn assert_all(results: Vec<(String, String)>, expected: &str) {
    for (code, reason) in results {
        assert_eq!(reason, expected, "{code}");
    }
}

/// Class 1: an import line carries a command after a comment; nothing of it
/// reaches a REPL.
#[tokio::test]
async fn a_command_hidden_in_the_import_header_is_refused() {
    assert_all(
        reasons(&[
            "import Lean /- x -/ set_option debug.skipKernelTC true\ntheorem t : False := by simp",
            "import Lean; axiom cheat : False\ntheorem t : False := cheat",
            "import Lean elab \"#print\" \"axioms\" : command => pure ()\ntheorem t : True := trivial",
            "import all Lean\ntheorem t : True := trivial",
        ])
        .await,
        "header_error",
    );
}

/// Class 2: code hidden behind lexical constructs a naive scanner misreads.
#[tokio::test]
async fn code_hidden_behind_literals_is_seen() {
    assert_all(
        reasons(&[
            "def c : Char := '\"'\n#eval c\ntheorem t : True := trivial",
            "def s := r#\"\"-/\"#\naxiom cheat : False\ntheorem t : False := cheat",
            "def s := s!\"{(by_elab pure (Lean.mkConst ``True))}\"\ntheorem t : True := trivial",
            "def s := \"/-\"\nset_option debug.skipKernelTC true\ntheorem t : True := trivial",
        ])
        .await,
        "forbidden_command",
    );
}

/// Class 3: entry points for running code that a deny-list missed.
#[tokio::test]
async fn every_way_to_run_code_is_outside_the_allow_list() {
    assert_all(
        reasons(&[
            "#eval! (1 : Nat)\ntheorem t : True := trivial",
            "theorem t : True := by_elab pure (Lean.mkConst ``True.intro)",
            "@[tactic trivial] def tac : Lean.Elab.Tactic.Tactic := fun _ => pure ()\ntheorem t : True := trivial",
            "@[delab app.f] def d : Lean.PrettyPrinter.Delaborator.Delab := failure\ntheorem t : True := trivial",
            "simproc s (_) := fun _ => pure .continue\ntheorem t : True := trivial",
            "@[app_unexpander f] def u : Lean.PrettyPrinter.Unexpander := fun _ => failure\ntheorem t : True := trivial",
        ])
        .await,
        "forbidden_command",
    );
}

/// Class 5: a command that hides messages, and a private theorem with a
/// `sorry`, are never valid.
#[tokio::test]
async fn hidden_messages_and_private_theorems_do_not_pass() {
    assert_all(
        reasons(&[
            "#guard_msgs (drop all) in\nprivate theorem p : False := sorry\ntheorem t : True := trivial",
            "set_option linter.all false in\n#guard_msgs in\ntheorem t : True := trivial",
            "open Nat in\n#guard_msgs (drop error) in\ntheorem t : True := trivial",
        ])
        .await,
        "forbidden_command",
    );
    assert_all(
        reasons(&[
            "private theorem p : 1 = 2 := by exact?\n-- sim: axioms p sorryAx\ntheorem t : True := trivial",
            "theorem t : True := trivial\ntheorem _aux : 1 = 2 := by exact?\n-- sim: axioms _aux sorryAx",
            "namespace X\nprivate theorem q : False := by exact?\n-- sim: axioms q sorryAx\nend X\ntheorem t : True := trivial",
        ])
        .await,
        "uses_sorry",
    );
}

/// Class 8: nothing to check is not a win.
#[tokio::test]
async fn a_snippet_with_nothing_to_check_is_not_valid() {
    assert_all(
        reasons(&[
            "",
            "-- only a comment",
            "import Lean",
            "/- theorem t : True := trivial -/\ndef x := 1",
        ])
        .await,
        "no_theorem",
    );
}

/// A declaration added with the kernel check off (what a metaprogram can
/// do) passes the snippet's own audit, and only the kernel replay, in a
/// process that never ran the snippet, refuses it.
#[tokio::test]
async fn the_kernel_replay_refuses_what_the_kernel_never_checked() {
    let farm = driver();
    let code = "theorem t : True := trivial\n-- sim: unchecked bad : 1 = 2";
    let mut check = request(code);
    check.policy.allow_metaprogramming = true;
    let verdict = farm.driver.check(&check).await.unwrap();
    assert_eq!(reason_code(&verdict), "kernel_rejected", "{verdict:?}");
    assert!(verdict.timings.replay_ms > 0.0);

    check.policy.replay = ReplayMode::WhenMetaprogramming;
    let verdict = farm.driver.check(&check).await.unwrap();
    assert_eq!(reason_code(&verdict), "kernel_rejected", "{verdict:?}");

    // Without the replay, the snippet's own audit is fooled: this is what
    // `replay: never` gives up.
    check.policy.replay = ReplayMode::Never;
    let verdict = farm.driver.check(&check).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    assert_eq!(verdict.timings.replay_ms, 0.0);
}

/// A REPL in which a snippet's metaprogram ran is never used again.
#[tokio::test]
async fn a_repl_that_ran_snippet_code_is_not_reused() {
    let farm = driver();
    let mut check = request("#eval 1\ntheorem t : True := trivial");
    check.policy.allow_metaprogramming = true;
    let first = farm.driver.check(&check).await.unwrap();
    let second = farm.driver.check(&check).await.unwrap();
    assert_eq!(first.status(), CheckStatus::Valid, "{first:?}");
    assert!(!second.repl_reused, "{second:?}");
    let plain = request("theorem t : True := trivial");
    farm.driver.check(&plain).await.unwrap();
    assert!(farm.driver.check(&plain).await.unwrap().repl_reused);
}

/// A pinned statement and its preamble run in the (shared) REPL too: they
/// pass the same screen as a body, whoever wrote them.
#[tokio::test]
async fn a_pinned_statement_cannot_carry_commands() {
    let farm = driver();
    for (preamble, statement) in [
        (Some("#eval IO.println \"x\""), "theorem t : True"),
        (Some("open Nat\nrun_cmd pure ()"), "theorem t : True"),
        (None, "theorem t : True := by run_tac pure ()"),
        (
            None,
            "theorem t : (by_elab pure (Lean.mkConst ``True) : Prop)",
        ),
        (
            Some("set_option debug.skipKernelTC true"),
            "theorem t : True",
        ),
    ] {
        let mut check = request("theorem t : True := trivial");
        check.policy.pinned = Some(PinnedStatement {
            name: "t".into(),
            statement: statement.into(),
            preamble: preamble.map(str::to_string),
        });
        let verdict = farm.driver.check(&check).await.unwrap();
        assert_eq!(
            reason_code(&verdict),
            "forbidden_command",
            "{preamble:?} {statement}: {verdict:?}"
        );
        assert!(
            verdict
                .reason()
                .unwrap()
                .message
                .contains("pinned statement"),
            "{verdict:?}"
        );
    }
}
