//! Tactic sessions on real `lean-sim` processes in the real sandbox:
//! opening, branching, errors, proofs checked through the check path,
//! pickles across processes, limits, crashes and refused tactics.

use leanfarm_core::{CheckStatus, PinnedStatement, Policy, ReasonCode};
use leanfarm_driver::{OpenRequest, Opened, SessionError, StateId, TacticOutcome};
use leanfarm_testkit::driver::{driver, driver_with, small_pool, TestDriver};
use leanfarm_testkit::request;
use std::time::Duration;

fn statement(name: &str, statement: &str) -> PinnedStatement {
    PinnedStatement {
        name: name.into(),
        statement: statement.into(),
        preamble: None,
    }
}

const CONJUNCTION: &str = "theorem both (p q : Prop) (hp : p) (hq : q) : p ∧ q";

async fn open(farm: &TestDriver, repls: usize) -> Opened {
    open_with_deadline(farm, repls, Duration::from_millis(1500)).await
}

async fn open_with_deadline(farm: &TestDriver, repls: usize, tactic_timeout: Duration) -> Opened {
    let mut request = OpenRequest::theorem("import Mathlib", statement("both", CONJUNCTION));
    request.repls = repls;
    request.tactic_timeout = tactic_timeout;
    farm.driver.open_session(request).await.unwrap()
}

fn open_state(outcome: TacticOutcome) -> (StateId, Vec<String>) {
    match outcome {
        TacticOutcome::Open { state, goals } => (state, goals),
        other => panic!("expected an open state, got {other:?}"),
    }
}

fn proved(outcome: TacticOutcome) -> StateId {
    match outcome {
        TacticOutcome::Proved { state } => state,
        other => panic!("expected a proof, got {other:?}"),
    }
}

#[tokio::test]
async fn a_theorem_opens_with_its_goal_and_a_tactic_proves_it() {
    let farm = driver();
    let opened = open(&farm, 1).await;
    assert_eq!(opened.states.len(), 1);
    assert_eq!(
        opened.states[0].goals,
        ["p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"]
    );
    let session = opened.session;
    let done = proved(session.apply(0, "exact ⟨hp, hq⟩").await.unwrap());
    let proof = session.assemble_proof(&[0, done]).unwrap();
    assert_eq!(
        proof,
        format!("import Mathlib\n{CONJUNCTION} := by\n  exact ⟨hp, hq⟩")
    );
    // The session's answer is no verdict: the proof goes through the check path.
    let verdict = farm.driver.check(&request(&proof)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    session.close().await;
    assert_eq!(farm.driver.session_repls(), 0);
}

#[tokio::test]
async fn any_earlier_state_can_be_extended_again() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 1).await;
    let (split, goals) = open_state(session.apply(0, "constructor").await.unwrap());
    assert_eq!(
        goals,
        [
            "case left\np q : Prop\nhp : p\nhq : q\n⊢ p",
            "case right\np q : Prop\nhp : p\nhq : q\n⊢ q"
        ]
    );
    // Two branches from the same state, and a third from the root.
    let (left_done, goals) = open_state(session.apply(split, "exact hp").await.unwrap());
    assert_eq!(goals, ["case right\np q : Prop\nhp : p\nhq : q\n⊢ q"]);
    let (other, _) = open_state(session.apply(split, "assumption").await.unwrap());
    assert_ne!(other, left_done);
    let (again, goals) = open_state(session.apply(0, "constructor").await.unwrap());
    assert_ne!(again, split);
    assert_eq!(goals.len(), 2);
    let done = proved(
        session
            .apply(left_done, "exact hq\n-- sim: info Try this: exact hq")
            .await
            .unwrap(),
    );
    let summary = session.states();
    assert_eq!(
        summary[done as usize].messages[0].data,
        "Try this: exact hq"
    );
    assert_eq!(summary[done as usize].parent, Some(left_done));
    assert_eq!(
        summary[done as usize].tactic.as_deref(),
        Some("exact hq\n-- sim: info Try this: exact hq")
    );
    assert!(summary[done as usize].proved);
    assert_eq!(
        session
            .assemble_proof(&[0, split, left_done, done])
            .unwrap(),
        format!("import Mathlib\n{CONJUNCTION} := by\n  constructor\n  exact hp\n  exact hq\n  -- sim: info Try this: exact hq")
    );
    // A chain that skips a state, or does not end in a proof, is refused.
    assert!(matches!(
        session.assemble_proof(&[0, left_done, done]),
        Err(SessionError::BadChain(_))
    ));
    assert!(matches!(
        session.assemble_proof(&[0, split]),
        Err(SessionError::BadChain(_))
    ));
    assert!(matches!(
        session.apply(999, "rfl").await,
        Err(SessionError::UnknownState(999))
    ));
}

#[tokio::test]
async fn a_failing_tactic_answers_with_leans_messages_and_makes_no_state() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 1).await;
    match session.apply(0, "exact nowhere").await.unwrap() {
        TacticOutcome::Error { messages, status } => {
            assert_eq!(messages[0].data, "Unknown identifier `nowhere`");
            assert_eq!(status.as_deref(), Some("Incomplete: contains sorry"));
        }
        other => panic!("{other:?}"),
    }
    match session
        .apply(0, "simp\n-- sim: fail simp made no progress")
        .await
        .unwrap()
    {
        TacticOutcome::Error { messages, status } => {
            assert_eq!(messages[0].data, "Lean error:\nsimp made no progress");
            assert_eq!(status, None);
        }
        other => panic!("{other:?}"),
    }
    // `sorry` leaves no goal but proves nothing.
    assert!(matches!(
        session.apply(0, "sorry").await.unwrap(),
        TacticOutcome::Error { .. }
    ));
    assert_eq!(session.states().len(), 1, "no state was made");
    // The session goes on.
    proved(session.apply(0, "exact ⟨hp, hq⟩").await.unwrap());
}

#[tokio::test]
async fn a_snippets_sorries_open_states_and_the_proofs_take_their_places() {
    let farm = driver();
    let body =
        "theorem a (p : Prop) (hp : p) : p := sorry\n\ntheorem b (q : Prop) : q → q := by\n  sorry";
    let opened = farm
        .driver
        .open_session(OpenRequest::snippet("", body))
        .await
        .unwrap();
    assert_eq!(
        opened
            .states
            .iter()
            .map(|s| s.goals[0].as_str())
            .collect::<Vec<_>>(),
        ["p : Prop\nhp : p\n⊢ p", "q : Prop\n⊢ q → q"]
    );
    assert!(opened
        .messages
        .iter()
        .all(|m| m.data == "declaration uses `sorry`"));
    let session = opened.session;
    let a = proved(session.apply(0, "exact hp").await.unwrap());
    let (intro, goals) = open_state(session.apply(1, "intro h").await.unwrap());
    assert_eq!(goals, ["q : Prop\nh : q\n⊢ q"]);
    let b = proved(session.apply(intro, "exact h").await.unwrap());
    let proof = session
        .assemble_proofs(&[vec![0, a], vec![1, intro, b]])
        .unwrap();
    assert_eq!(
        proof,
        "theorem a (p : Prop) (hp : p) : p := (by\n    exact hp)\n\ntheorem b (q : Prop) : q → q := by\n  exact (by\n      intro h\n      exact h)"
    );
    let verdict = farm.driver.check(&request(&proof)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    // With one root left unproved, its `sorry` stays, and the check says so.
    let partial = session.assemble_proofs(&[vec![0, a]]).unwrap();
    let verdict = farm.driver.check(&request(&partial)).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::Sorry, "{partial}");
}

#[tokio::test]
async fn a_pickled_state_is_restored_in_another_sessions_repl() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 1).await;
    let (split, goals) = open_state(session.apply(0, "constructor").await.unwrap());
    let bytes = session.pickle(split).await.unwrap();
    assert!(!bytes.is_empty());
    let origin = session.origin(split).unwrap();
    session.close().await;

    // Another session, other REPL processes: the state comes back from the bytes.
    let Opened { session, .. } = open(&farm, 1).await;
    let restored = session.unpickle(&bytes, origin).await.unwrap();
    assert_eq!(restored.goals, goals);
    let (left, _) = open_state(session.apply(restored.id, "exact hp").await.unwrap());
    let done = proved(session.apply(left, "exact hq").await.unwrap());
    // The proof still starts at the root: the origin carries the tactics before the pickle.
    assert_eq!(
        session.assemble_proof(&[restored.id, left, done]).unwrap(),
        format!("import Mathlib\n{CONJUNCTION} := by\n  constructor\n  exact hp\n  exact hq")
    );
}

#[tokio::test]
async fn widening_copies_a_state_into_every_repl_and_batches_run_across_them() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 2).await;
    let (split, _) = open_state(session.apply(0, "constructor").await.unwrap());
    assert_eq!(session.widen(split).await.unwrap(), 2);
    let pairs: Vec<(StateId, String)> = vec![
        (split, "exact hp\n-- sim: sleep 200".to_string()),
        (split, "exact hp\n-- sim: sleep 200".to_string()),
        (0, "exact ⟨hp, hq⟩".to_string()),
        (split, "run_tac pure ()".to_string()),
    ];
    let outcomes = session.apply_all(&pairs).await;
    assert!(matches!(outcomes[0], Ok(TacticOutcome::Open { .. })));
    assert!(matches!(outcomes[1], Ok(TacticOutcome::Open { .. })));
    assert!(matches!(outcomes[2], Ok(TacticOutcome::Proved { .. })));
    assert!(matches!(outcomes[3], Ok(TacticOutcome::Refused { .. })));
    assert_eq!(session.usage().tactics, 4, "constructor, and three sent");
    assert_eq!(session.usage().live_repls, 2);
}

#[tokio::test]
async fn tactics_that_run_code_are_refused_before_any_repl_sees_them() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 1).await;
    let marker = farm.scratch.path().join("ran");
    for tactic in [
        "run_tac pure ()".to_string(),
        "exact (by_elab pure (Lean.mkConst ``True))".to_string(),
        "run_elab pure ()".to_string(),
        "native_decide".to_string(),
        "decide +native".to_string(),
        "bv_decide".to_string(),
        "set_option debug.skipKernelTC true in\nexact ⟨hp, hq⟩".to_string(),
        "set_option trace.Meta.synthInstance true in\nsimp".to_string(),
        "trivial\n#eval IO.println \"hi\"".to_string(),
        "simp\ntheorem evil : False := sorry".to_string(),
        "exact s!\"{(by_elab pure (Lean.mkConst ``True))}\"".to_string(),
        "exact (unsafe_cast 0 : _)\n  where unsafe def x := 1".to_string(),
        "simp\r#eval 1".to_string(),
        "exact \"never closed".to_string(),
        String::new(),
        format!("run_tac pure ()\n-- sim: write {} ran", marker.display()),
    ] {
        match session.apply(0, &tactic).await.unwrap() {
            TacticOutcome::Refused { reason } => assert!(
                matches!(
                    reason.code,
                    ReasonCode::ForbiddenCommand | ReasonCode::LeanError
                ),
                "{tactic:?}: {reason:?}"
            ),
            other => panic!("{tactic:?} was not refused: {other:?}"),
        }
    }
    assert!(!marker.exists(), "a refused tactic ran");
    assert_eq!(session.usage().tactics, 0);
    assert_eq!(session.usage().refused, 16);
    // Refused or not, a call counts as use of the session.
    let idle = session.idle_for();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(session.idle_for() >= idle + Duration::from_millis(50));
    session.apply(0, "run_tac pure ()").await.unwrap();
    assert!(session.idle_for() < Duration::from_millis(50));

    // With metaprogramming allowed, a tactic that runs code goes to Lean.
    let mut request = OpenRequest::theorem("", statement("both", CONJUNCTION));
    request.policy = Policy {
        allow_metaprogramming: true,
        ..Policy::default()
    };
    let Opened { session, .. } = farm.driver.open_session(request).await.unwrap();
    proved(session.apply(0, "run_tac pure ()").await.unwrap());
    assert!(matches!(
        session
            .apply(0, "set_option debug.skipKernelTC true in\nrfl")
            .await
            .unwrap(),
        TacticOutcome::Refused { .. }
    ));
}

#[tokio::test]
async fn a_tactic_past_its_deadline_loses_its_repl_and_the_state_is_rebuilt() {
    let farm = driver();
    let Opened { session, .. } = open(&farm, 2).await;
    let (split, _) = open_state(session.apply(0, "constructor").await.unwrap());
    let (left, _) = open_state(session.apply(split, "exact hp").await.unwrap());
    let started = std::time::Instant::now();
    let lost = session.apply(left, "simp\n-- sim: silent").await;
    match lost {
        Err(SessionError::ReplLost { reason }) => assert_eq!(reason.code, ReasonCode::Timeout),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not hang"
    );
    assert_eq!(session.usage().live_repls, 1);
    assert!(!session.states()[left as usize].live);
    // The root lives on in the other REPL.
    proved(session.apply(0, "exact ⟨hp, hq⟩").await.unwrap());
    // The state is rebuilt by re-running the opening and its tactics.
    let done = proved(session.apply(left, "exact hq").await.unwrap());
    assert_eq!(session.usage().restarts, 1);
    assert_eq!(session.usage().live_repls, 2);
    assert_eq!(
        session.assemble_proof(&[0, split, left, done]).unwrap(),
        format!("import Mathlib\n{CONJUNCTION} := by\n  constructor\n  exact hp\n  exact hq")
    );
    // A busy loop is cut off the same way.
    assert!(matches!(
        session.apply(0, "simp\n-- sim: spin").await,
        Err(SessionError::ReplLost { .. })
    ));
    drop(session);
    assert_eq!(farm.driver.session_repls(), 0);
}

#[tokio::test]
async fn a_tactic_out_of_memory_or_a_crash_is_reported_not_hung() {
    let farm = driver_with(small_pool(), 256 << 20);
    // Long enough for the cgroup to reach its limit on a loaded machine.
    let Opened { session, .. } = open_with_deadline(&farm, 1, Duration::from_secs(30)).await;
    match session.apply(0, "simp\n-- sim: memory 400").await {
        Err(SessionError::ReplLost { reason }) => {
            assert_eq!(reason.code, ReasonCode::OutOfMemory, "{reason:?}")
        }
        other => panic!("{other:?}"),
    }
    let Opened { session, .. } = open(&farm, 1).await;
    let (split, _) = open_state(session.apply(0, "constructor").await.unwrap());
    match session.apply(split, "simp\n-- sim: crash").await {
        Err(SessionError::ReplLost { reason }) => {
            assert_eq!(reason.code, ReasonCode::ReplCrashed, "{reason:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(session.usage().live_repls, 0);
    // When the farm has no room to start the REPL again, the call says so.
    farm.driver.set_max_session_repls(0);
    assert!(matches!(
        session.apply(split, "exact hp").await,
        Err(SessionError::Busy(0))
    ));
    farm.driver.set_max_session_repls(4);
    open_state(session.apply(split, "exact hp").await.unwrap());
    assert!(!session.pickle(split).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_opening_the_screen_or_lean_refuses_opens_nothing() {
    let farm = driver();
    let refused = [
        OpenRequest::snippet(
            "import Mathlib",
            "#eval IO.println 1\ntheorem t : True := sorry",
        ),
        OpenRequest::snippet("import Mathlib\ndef x := 1", "theorem t : True := sorry"),
        OpenRequest::theorem("", statement("t", "def t : True")),
    ];
    for request in refused {
        assert!(
            matches!(
                farm.driver.open_session(request.clone()).await,
                Err(SessionError::Refused(_))
            ),
            "{request:?}"
        );
    }
    assert!(matches!(
        farm.driver
            .open_session(OpenRequest::snippet("", "theorem t : True := trivial"))
            .await,
        Err(SessionError::NoProofState { .. })
    ));
    let mut too_many = OpenRequest::snippet("", "theorem t : True := sorry");
    too_many.repls = 0;
    assert!(matches!(
        farm.driver.open_session(too_many).await,
        Err(SessionError::BadRepls(0))
    ));
    // The farm's cap on session REPLs.
    farm.driver.set_max_session_repls(1);
    let Opened { session, .. } = open(&farm, 1).await;
    let mut second = OpenRequest::theorem("", statement("both", CONJUNCTION));
    second.repls = 1;
    assert!(matches!(
        farm.driver.open_session(second).await,
        Err(SessionError::Busy(1))
    ));
    session.close().await;
    assert!(matches!(
        session.apply(0, "rfl").await,
        Err(SessionError::Closed)
    ));
    open(&farm, 1).await;
}

/// A server holds sessions across requests and awaits them in its handlers:
/// the session and every future it returns can move between threads.
#[tokio::test]
async fn sessions_and_their_futures_are_send() {
    fn send<T: Send>(value: T) -> T {
        value
    }
    let farm = driver();
    let Opened { session, .. } = send(
        farm.driver
            .open_session(OpenRequest::theorem("", statement("both", CONJUNCTION))),
    )
    .await
    .unwrap();
    let session = send(session);
    send(session.apply(0, "constructor")).await.unwrap();
    send(session.apply_all(&[(0, "rfl".to_string())])).await;
    let bytes = send(session.pickle(0)).await.unwrap();
    let origin = session.origin(0).unwrap();
    send(session.unpickle(&bytes, origin)).await.unwrap();
    send(session.widen(0)).await.unwrap();
    send(session.close()).await;
    let shared = std::sync::Arc::new(session);
    tokio::spawn(async move { shared.usage() }).await.unwrap();
}
