//! Tactic sessions on real `lean-sim` processes in the real sandbox:
//! opening, branching, errors, proofs, pickles, limits and refused tactics.

use leanfarm_core::PinnedStatement;
use leanfarm_driver::{OpenRequest, TacticOutcome};
use leanfarm_testkit::driver::driver;

fn statement(name: &str, statement: &str) -> PinnedStatement {
    PinnedStatement {
        name: name.into(),
        statement: statement.into(),
        preamble: None,
    }
}

#[tokio::test]
async fn a_theorem_opens_one_state_and_a_tactic_proves_it() {
    let farm = driver();
    let opened = farm
        .driver
        .open_session(OpenRequest::theorem(
            "import Mathlib",
            statement("t", "theorem t : 1 + 1 = 2"),
        ))
        .await
        .unwrap();
    assert_eq!(opened.states.len(), 1);
    assert_eq!(opened.states[0].goals, vec!["⊢ 1 + 1 = 2".to_string()]);
    let session = opened.session;
    let outcome = session.apply(opened.states[0].id, "rfl").await.unwrap();
    let TacticOutcome::Proved { state } = outcome else {
        panic!("not proved: {outcome:?}")
    };
    assert_eq!(
        session.assemble_proof(&[0, state]).unwrap(),
        "import Mathlib\ntheorem t : 1 + 1 = 2 := by\n  rfl"
    );
    session.close().await;
}
