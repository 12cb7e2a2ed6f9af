//! lean-sim as a real process: the replay round-trip over every real
//! transcript, and the synthesized behaviours the farm's tests rely on.

use lean_protocol::{encode_request, split_frames, CommandRequest, Reply, ReplyDecoder, Request};
use leanfarm_testkit::shared_transcripts_dir;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Repl {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Repl {
    fn start(args: &[&str]) -> Repl {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lean-sim"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn lean-sim");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Repl {
            child,
            stdin,
            stdout,
        }
    }

    fn send_text(&mut self, request_text: &str) -> Reply {
        self.stdin
            .write_all(request_text.trim_end().as_bytes())
            .unwrap();
        self.stdin.write_all(b"\n\n").unwrap();
        self.stdin.flush().unwrap();
        let mut decoder = ReplyDecoder::new(64 << 20);
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            if read == 0 {
                return decoder
                    .finish()
                    .expect("a reply before end of stream")
                    .expect("a valid reply");
            }
            if let Some(reply) = decoder.push_line(&line) {
                return reply.expect("a valid reply");
            }
        }
    }

    fn cmd(&mut self, cmd: &str, env: Option<u64>) -> Reply {
        let request = Request::Command(CommandRequest {
            cmd: cmd.to_string(),
            env,
            ..Default::default()
        });
        self.send_text(&encode_request(&request))
    }

    fn request(&mut self, request: &Request) -> Reply {
        self.send_text(&encode_request(request))
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command_reply(reply: Reply) -> lean_protocol::CommandReply {
    match reply {
        Reply::Command(reply) => reply,
        other => panic!("expected a command reply, got {other:?}"),
    }
}

#[test]
fn replay_reproduces_every_real_transcript() {
    let dir = shared_transcripts_dir();
    let mut checked = 0;
    for transcript in lean_protocol::transcripts::read_transcripts(&dir)
        .expect("transcripts dir (set LEAN_FARM_SHARED_DIR)")
    {
        let (name, requests, recorded) = (transcript.name, transcript.requests, transcript.replies);
        let mut repl = Repl::start(&["repl", "--replay", dir.to_str().unwrap()]);
        for (request, recorded_text) in requests.iter().zip(&recorded) {
            let recorded_value: serde_json::Value = serde_json::from_str(recorded_text).unwrap();
            let recorded_reply = Reply::from_value(recorded_value.clone()).unwrap();
            let reply = repl.send_text(request);
            assert_eq!(reply, recorded_reply, "{name}: {request}");
            assert_eq!(reply.to_value(), recorded_value, "{name}: {request}");
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} replies checked");
}

#[test]
fn replay_answers_an_unrecorded_command_with_an_error_reply() {
    let mut repl = Repl::start(&[
        "repl",
        "--replay",
        shared_transcripts_dir().to_str().unwrap(),
    ]);
    let reply = repl.cmd("theorem never_recorded : True := trivial", None);
    assert_eq!(
        reply,
        Reply::Error {
            message: "lean-sim replay: no recording for this command".into()
        }
    );
}

#[test]
fn requests_are_framed_as_the_repl_frames_them() {
    // Blank lines before and between requests, a request over several lines,
    // CRLF line breaks, text that is not JSON, and a last request ended by
    // the end of input instead of a blank line: one reply each, in order.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lean-sim"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn lean-sim");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"\n \n{\"cmd\":\n \"def a := 1\"}\n\n\n\r\n{\"cmd\": \"def b := a\",\r\n \"env\": 0}\r\n\r\n\
              hello\n\n{\"cmd\": \"def c := 3\"}",
        )
        .unwrap();
    let finished = child.wait_with_output().unwrap();
    assert!(finished.status.success());
    let output = String::from_utf8(finished.stdout).unwrap();
    assert!(output.ends_with("}\n\n"), "{output:?}");
    let replies: Vec<Reply> = split_frames(&output)
        .iter()
        .map(|frame| Reply::from_value(serde_json::from_str(frame).unwrap()).unwrap())
        .collect();
    assert_eq!(replies.len(), 4, "{output}");
    assert_eq!(command_reply(replies[0].clone()).env, 0);
    let second = command_reply(replies[1].clone());
    assert_eq!((second.env, second.messages.len()), (1, 0), "{second:?}");
    assert!(
        matches!(&replies[2], Reply::Error { message } if message.starts_with("Could not parse JSON")),
        "{:?}",
        replies[2]
    );
    assert_eq!(command_reply(replies[3].clone()).env, 2);
}

#[test]
fn environments_are_numbered_and_isolated_as_in_lean() {
    let mut repl = Repl::start(&["repl"]);
    assert_eq!(command_reply(repl.cmd("def f := 37", None)).env, 0);
    assert_eq!(command_reply(repl.cmd("def g := f", Some(0))).env, 1);
    // g is declared in env 1 only: redeclaring it on env 0 is fine, on env 1 it is not.
    let fresh = command_reply(repl.cmd("def g := 1", Some(0)));
    assert_eq!(fresh.env, 2);
    assert!(fresh.messages.is_empty());
    let clash = command_reply(repl.cmd("def g := 2", Some(1)));
    assert_eq!(clash.messages[0].data, "'g' has already been declared");
    assert_eq!(
        repl.cmd("def h := 1", Some(42)),
        Reply::Error {
            message: "Unknown environment.".into()
        }
    );
}

#[test]
fn a_command_with_gc_is_answered_as_the_repl_answers_it() {
    // The Kimina Lean Server sends `gc` with every command after the header.
    let mut repl = Repl::start(&["repl"]);
    assert_eq!(command_reply(repl.cmd("def f := 37", None)).env, 0);
    let reply =
        command_reply(repl.send_text("{\"cmd\": \"def g := f\", \"env\": 0, \"gc\": true}\n\n"));
    assert_eq!(reply.env, 1);
    assert!(reply.messages.is_empty(), "{:?}", reply.messages);
    let refused = repl.send_text("{\"cmd\": \"def h := 1\", \"gcc\": true}\n\n");
    assert!(
        matches!(&refused, Reply::Error { message } if message.starts_with("Could not parse JSON")),
        "{refused:?}"
    );
}

#[test]
fn sorry_has_the_shape_lean_gives_it() {
    let dir = shared_transcripts_dir();
    let recorded =
        split_frames(&std::fs::read_to_string(dir.join("tactic_sorry.expected.out")).unwrap());
    let recorded = Reply::from_value(serde_json::from_str(&recorded[0]).unwrap()).unwrap();
    let mut repl = Repl::start(&["repl"]);
    assert_eq!(repl.cmd("def f : Nat := by sorry", None), recorded);
}

#[test]
fn axioms_follow_sorry_native_decide_declared_axioms_and_directives() {
    let mut repl = Repl::start(&["repl"]);
    let code = "axiom cheat : False\ntheorem a : 1 = 2 := cheat.elim\ntheorem b : 1 = 2 := a\ntheorem c : True := by native_decide\ntheorem d : True := trivial\n-- sim: axioms d propext,Quot.sound";
    command_reply(repl.cmd(code, None));
    let expectations = [
        ("a", "'a' depends on axioms: [cheat]"),
        ("b", "'b' depends on axioms: [cheat]"),
        ("c", "'c' depends on axioms: [Lean.ofReduceBool]"),
        ("d", "'d' depends on axioms: [Quot.sound, propext]"),
    ];
    for (name, expected) in expectations {
        let reply = command_reply(repl.cmd(&format!("#print axioms {name}"), Some(0)));
        assert_eq!(reply.messages[0].data, expected);
    }
}

#[test]
fn a_spoofed_print_axioms_lies_but_the_audit_does_not() {
    let mut repl = Repl::start(&["repl"]);
    command_reply(repl.cmd("elab \"#leanfarm_audit_beef\" : command => pure ()", None));
    let code = "elab \"#print \" \"axioms\" x:ident : command => pure ()\ntheorem t : 1 = 2 := sorry\n#print axioms t";
    let reply = command_reply(repl.cmd(code, Some(0)));
    let info = reply
        .messages
        .iter()
        .find(|m| m.data.starts_with("'t'"))
        .unwrap();
    assert_eq!(info.data, "'t' does not depend on any axioms");
    let audit = command_reply(repl.cmd("#leanfarm_audit_beef", Some(reply.env)));
    assert_eq!(
        audit.messages[0].data,
        r#"leanfarm-audit beef [{"axioms":["sorryAx"],"kind":"theorem","name":"t","term":": 1 = 2","type":": 1 = 2"}]"#
    );
    let unknown = command_reply(repl.cmd("#leanfarm_audit_other", Some(reply.env)));
    assert_eq!(unknown.messages[0].severity, lean_protocol::Severity::Error);
}

/// Defining an audit command under another name, as a snippet may, leaves
/// the one defined before it working (in Lean, each is its own command).
#[test]
fn a_second_audit_command_does_not_unregister_the_first() {
    let mut repl = Repl::start(&["repl"]);
    command_reply(repl.cmd("elab \"#leanfarm_audit_beef\" : command => pure ()", None));
    let code = "elab \"#leanfarm_audit_0000\" : command => pure ()\ntheorem t : 1 = 2 := sorry";
    let reply = command_reply(repl.cmd(code, Some(0)));
    let audit = command_reply(repl.cmd("#leanfarm_audit_beef", Some(reply.env)));
    assert_eq!(audit.messages.len(), 1, "{:?}", audit.messages);
    assert!(
        audit.messages[0].data.starts_with("leanfarm-audit beef [")
            && audit.messages[0].data.contains("sorryAx"),
        "{}",
        audit.messages[0].data
    );
    // The environment before the snippet knows only the farm's command.
    let before = command_reply(repl.cmd("#leanfarm_audit_0000", Some(0)));
    assert_eq!(before.messages[0].severity, lean_protocol::Severity::Error);
}

#[test]
fn directives_report_messages_at_their_line() {
    let mut repl = Repl::start(&["repl"]);
    let reply = command_reply(repl.cmd(
        "theorem t : True := by\n  -- sim: error unsolved goals\n  trivial",
        None,
    ));
    assert_eq!(reply.messages[0].data, "unsolved goals");
    assert_eq!(reply.messages[0].pos.line, 2);
    let reply = command_reply(repl.cmd("-- sim: frobnicate", None));
    assert!(reply.messages[0].data.contains("unknown directive"));
}

#[test]
fn hostile_acts_really_happen_and_report_what_they_did() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let secret = scratch.path().join("secret.txt");
    std::fs::write(&secret, "s3cret").unwrap();
    let written = scratch.path().join("written.txt");
    let mut repl = Repl::start(&["repl"]);
    let code = format!(
        "-- sim: connect {address}\n-- sim: read {}\n-- sim: write {} hello there\n-- sim: getpid",
        secret.display(),
        written.display()
    );
    let reply = command_reply(repl.cmd(&code, None));
    let data: Vec<&str> = reply.messages.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data[0], format!("connect {address}: ok"));
    assert_eq!(data[1], format!("read {}: ok: s3cret", secret.display()));
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello there");
    assert!(data[3].starts_with("getpid: pid "));
}

#[test]
fn faults_break_the_protocol_as_announced() {
    let mut repl = Repl::start(&["repl"]);
    repl.stdin
        .write_all(b"{\"cmd\": \"-- sim: garbage\"}\n\n")
        .unwrap();
    repl.stdin.flush().unwrap();
    let mut line = String::new();
    repl.stdout.read_line(&mut line).unwrap();
    assert!(!line.starts_with('{'), "{line}");

    let mut repl = Repl::start(&["repl"]);
    repl.stdin
        .write_all(b"{\"cmd\": \"-- sim: exit 7\"}\n\n")
        .unwrap();
    repl.stdin.flush().unwrap();
    assert_eq!(repl.child.wait().unwrap().code(), Some(7));

    let mut repl = Repl::start(&["repl"]);
    repl.stdin
        .write_all(b"{\"cmd\": \"-- sim: exit-mid-reply\\ntheorem t : 1 = 1 := sorry\"}\n\n")
        .unwrap();
    repl.stdin.flush().unwrap();
    let mut decoder = ReplyDecoder::new(1 << 20);
    let mut output = String::new();
    std::io::Read::read_to_string(&mut repl.stdout, &mut output).unwrap();
    assert!(!output.is_empty());
    let mut outcomes: Vec<_> = output
        .split_inclusive('\n')
        .filter_map(|l| decoder.push_line(l))
        .collect();
    outcomes.extend(decoder.finish());
    assert!(
        matches!(
            outcomes.as_slice(),
            [Err(lean_protocol::DecodeError::Truncated)]
        ),
        "{outcomes:?}"
    );
}

#[test]
fn json_mode_prints_lean_json_lines_and_exit_code() {
    let scratch = tempfile::tempdir().unwrap();
    let good = scratch.path().join("good.lean");
    std::fs::write(&good, "theorem t : 1 = 1 := sorry\n").unwrap();
    let bad = scratch.path().join("bad.lean");
    std::fs::write(&bad, "-- sim: error boom\n").unwrap();
    let run = |file: &PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_lean-sim"))
            .arg("--json")
            .arg(file)
            .output()
            .unwrap()
    };
    let output = run(&good);
    assert_eq!(output.status.code(), Some(0));
    let message = lean_protocol::parse_lean_json_line(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(message.severity, "warning");
    assert_eq!(message.data, "declaration uses `sorry`");
    let output = run(&bad);
    assert_eq!(output.status.code(), Some(1));
    let message = lean_protocol::parse_lean_json_line(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (message.severity.as_str(), message.data.as_str()),
        ("error", "boom")
    );
}

/// As in Lean, a command can trail the imports on their own line (a block
/// comment is whitespace): it runs in the header's environment.
#[test]
fn a_command_after_the_imports_runs_as_lean_runs_it() {
    let mut repl = Repl::start(&["repl"]);
    command_reply(repl.cmd("elab \"#leanfarm_audit_beef\" : command => pure ()", None));
    let header = "import Lean /- a comment -/ axiom cheat : False\ntheorem t : False := cheat";
    let reply = command_reply(repl.cmd(header, None));
    assert!(
        reply
            .messages
            .iter()
            .all(|m| m.severity != lean_protocol::Severity::Error),
        "{reply:?}"
    );
    let printed = command_reply(repl.cmd("#print axioms t", Some(reply.env)));
    assert_eq!(printed.messages[0].data, "'t' depends on axioms: [cheat]");
}

/// A pickle carries constants, not commands; a constant that Lean's kernel
/// never checked fails the replay that unpickling is.
#[test]
fn unpickling_replays_the_constants_through_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let mut repl = Repl::start(&["repl"]);
    let honest = command_reply(repl.cmd("theorem t : True := trivial", None));
    let path = dir.path().join("honest.olean").display().to_string();
    command_reply(repl.request(&Request::PickleEnv {
        pickle_to: path.clone(),
        env: honest.env,
    }));
    command_reply(repl.request(&Request::UnpickleEnv {
        unpickle_env_from: path,
    }));

    let cheat = command_reply(repl.cmd(
        "theorem t : True := trivial\n-- sim: unchecked bad : 1 = 2",
        None,
    ));
    let path = dir.path().join("cheat.olean").display().to_string();
    command_reply(repl.request(&Request::PickleEnv {
        pickle_to: path.clone(),
        env: cheat.env,
    }));
    match repl.request(&Request::UnpickleEnv {
        unpickle_env_from: path,
    }) {
        Reply::Error { message } => assert!(
            message.contains("(kernel)") && message.contains("bad"),
            "{message}"
        ),
        other => panic!("the replay accepted an unchecked constant: {other:?}"),
    }
}

/// The tactic-mode transcripts lean-sim's own model (not the replay)
/// reproduces, reply for reply, field by field. The others need what
/// lean-sim does not model, each for the reason given.
const TACTIC_TRANSCRIPTS: &[&str] = &[
    "assumption_proof",
    "by_cases",
    "invalid_tactic",
    "Mathlib__test__induction",
    "Mathlib__test__on_goal",
    "Mathlib__test__pickle",
    "pickle_proof_state_1",
    "pickle_proof_state_2",
    "proof_branching",
    "proof_branching2",
    "proof_step",
    "proof_transitivity",
    "sorry_hypotheses",
    "tactic_mode_sorry",
    "unknown_proof_state",
];

/// Tactic-mode transcripts lean-sim does not reproduce, and why.
const NOT_MODELLED: &[(&str, &str)] = &[
    ("app_type_mismatch", "the kernel's metavariable check"),
    ("all_tactics-20250622", "allTactics' infotree walk"),
    ("self_proof_check", "`exact?`'s library search"),
    (
        "self_proof_apply_check",
        "the kernel's check of a self-reference",
    ),
    (
        "self_proof_exact_check",
        "the kernel's check of a self-reference",
    ),
    ("name_generator", "simp traces"),
    ("root_goals", "rootGoals and `exact?`"),
    ("trace_simp", "simp traces"),
    ("Mathlib__test__20240209", "Mathlib's elaboration"),
    ("Mathlib__test__H20231115", "Mathlib's elaboration"),
    ("Mathlib__test__exact", "`exact?`'s library search"),
    (
        "Mathlib__test__on_goal",
        "parenthesis-dropping pretty printing",
    ),
    (
        "Mathlib__test__placeholder_synthesis",
        "Mathlib's elaboration",
    ),
];

#[test]
fn tactic_mode_reproduces_the_real_transcripts() {
    let dir = shared_transcripts_dir();
    let transcripts = lean_protocol::transcripts::read_transcripts(&dir)
        .expect("transcripts dir (set LEAN_FARM_SHARED_DIR)");
    // Every tactic-mode transcript is either reproduced or named as not modelled.
    for transcript in &transcripts {
        let tactic_mode = transcript
            .requests
            .iter()
            .any(|request| request.contains("\"tactic\"") || request.contains("ProofState"));
        if tactic_mode {
            assert!(
                TACTIC_TRANSCRIPTS.contains(&transcript.name.as_str())
                    || NOT_MODELLED
                        .iter()
                        .any(|(name, _)| *name == transcript.name),
                "{}: a tactic-mode transcript neither reproduced nor listed",
                transcript.name
            );
        }
    }
    // Pickles are written where the recording wrote them (`test/...`),
    // relative to the REPL's working directory, shared by the transcripts
    // run in order (`pickle_proof_state_2` reads what `_1` wrote).
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("test")).unwrap();
    let mut checked = 0;
    for name in TACTIC_TRANSCRIPTS {
        let transcript = transcripts
            .iter()
            .find(|transcript| transcript.name == *name)
            .unwrap_or_else(|| panic!("{name}: no such transcript"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_lean-sim"))
            .arg("repl")
            .current_dir(cwd.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn lean-sim");
        let mut repl = Repl {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        for (request, recorded) in transcript.requests.iter().zip(&transcript.replies) {
            let recorded: serde_json::Value = serde_json::from_str(recorded).unwrap();
            let reply = repl.send_text(request);
            assert_eq!(reply.to_value(), recorded, "{name}: {request}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} replies checked");
}

fn proof_step(reply: Reply) -> lean_protocol::ProofStepReply {
    match reply {
        Reply::ProofStep(step) => step,
        other => panic!("expected a proof step, got {other:?}"),
    }
}

fn tactic(repl: &mut Repl, proof_state: u64, tactic: &str) -> Reply {
    repl.request(&Request::Tactic(lean_protocol::TacticRequest {
        tactic: tactic.to_string(),
        proof_state,
    }))
}

#[test]
fn directives_set_the_goals_a_tactic_leaves() {
    let mut repl = Repl::start(&["repl"]);
    let opened = command_reply(repl.cmd("theorem t (n : Nat) : n = n := by sorry", None));
    assert_eq!(opened.sorries[0].goal, "n : Nat\n⊢ n = n");
    let split = proof_step(tactic(
        &mut repl,
        0,
        "induct n\n-- sim: goal 0 = 0\n-- sim: goal n + 1 = n + 1",
    ));
    assert_eq!(
        split.goals,
        ["n : Nat\n⊢ 0 = 0", "n : Nat\n⊢ n + 1 = n + 1"]
    );
    assert_eq!(
        split.proof_status.as_deref(),
        Some("Incomplete: open goals remain")
    );
    // `closes` closes the main goal whatever the model says.
    let closed = proof_step(tactic(
        &mut repl,
        split.proof_state,
        "intro x\n-- sim: closes",
    ));
    assert_eq!(closed.goals, ["n : Nat\n⊢ n + 1 = n + 1"]);
    // `fail` is Lean's thrown error: no new state.
    assert_eq!(
        tactic(
            &mut repl,
            closed.proof_state,
            "simp\n-- sim: fail simp made no progress"
        ),
        Reply::Error {
            message: "Lean error:\nsimp made no progress".into()
        }
    );
    // `error` is an error Lean recovered from: the goal is closed by `sorry`.
    let recovered = proof_step(tactic(
        &mut repl,
        closed.proof_state,
        "omega\n-- sim: error omega could not prove the goal",
    ));
    assert_eq!(recovered.goals, Vec::<String>::new());
    assert_eq!(
        recovered.proof_status.as_deref(),
        Some("Incomplete: contains sorry")
    );
    assert_eq!(recovered.messages[0].data, "omega could not prove the goal");
    assert_eq!(
        (
            recovered.messages[0].pos.line,
            recovered.messages[0].pos.column
        ),
        (0, 0)
    );
    // A proof state is immutable: the earlier one is extended again.
    let proved = proof_step(tactic(&mut repl, closed.proof_state, "rfl"));
    assert_eq!(proved.proof_status.as_deref(), Some("Completed"));
    // Costs act in tactics as in commands.
    let started = std::time::Instant::now();
    proof_step(tactic(&mut repl, 0, "rfl\n-- sim: sleep 300"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[test]
fn a_pickled_proof_state_is_restored_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.olean").display().to_string();
    let mut first = Repl::start(&["repl"]);
    command_reply(first.cmd(
        "import Mathlib\ntheorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by sorry",
        None,
    ));
    let split = proof_step(tactic(&mut first, 0, "constructor"));
    let pickled = proof_step(first.request(&Request::PickleProofState {
        pickle_to: path.clone(),
        proof_state: split.proof_state,
    }));
    assert_eq!(pickled.goals, split.goals);
    let mut second = Repl::start(&["repl"]);
    let restored = proof_step(second.request(&Request::UnpickleProofState {
        unpickle_proof_state_from: path,
    }));
    assert_eq!(restored.proof_state, 0);
    assert_eq!(
        restored.goals,
        [
            "case left\np q : Prop\nhp : p\nhq : q\n⊢ p",
            "case right\np q : Prop\nhp : p\nhq : q\n⊢ q"
        ]
    );
    let left = proof_step(tactic(&mut second, 0, "exact hp"));
    assert_eq!(left.goals.len(), 1);
    let done = proof_step(tactic(&mut second, left.proof_state, "exact hq"));
    assert_eq!(done.proof_status.as_deref(), Some("Completed"));
}
