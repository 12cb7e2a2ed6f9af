//! The shipped problem set (`bench/problems/minif2f-style.jsonl`): each
//! known proof is `valid` through a real farm with lean-sim, with the
//! statement pinned as `/v1/prove` pins it; and `leanfarm bench` runs the
//! set end to end through `/v1/prove` with the dummy backend, writes its
//! report, and fails on a regression against a baseline.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn problem_set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/problems/minif2f-style.jsonl")
}

fn problems() -> Vec<Value> {
    std::fs::read_to_string(problem_set())
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A candidate as the prover makes one: the statement, ` := `, the proof.
fn known_proof_snippet(problem: &Value) -> String {
    format!(
        "{}\n\n{}\n\n{} := {}\n",
        problem["header"].as_str().unwrap(),
        problem["preamble"].as_str().unwrap(),
        problem["statement"].as_str().unwrap(),
        problem["proof"].as_str().unwrap()
    )
}

#[tokio::test]
async fn every_known_proof_is_valid_with_its_statement_pinned() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let problems = problems();
    assert!(problems.len() >= 30);
    let mut ids = Vec::new();
    for problem in &problems {
        let id = problem["id"].as_str().unwrap();
        ids.push(id.to_string());
        let body = json!({
            "snippets": [{ "id": id, "code": known_proof_snippet(problem) }],
            "policy": { "pinned": {
                "name": id,
                "statement": problem["statement"],
                "preamble": problem["preamble"],
            }},
            "wait": 60,
        });
        let (status, answer) = server.post("/v1/checks", &body).await;
        assert_eq!(status, 200, "{id}: {answer}");
        let verdict = &answer["results"][0]["verdict"];
        assert_eq!(verdict["status"], "valid", "{id}: {answer}");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), problems.len(), "ids are distinct");
}

fn leanfarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(args)
        .env("LEAN_FARM_LOG", "warn")
        .output()
        .expect("run leanfarm")
}

fn report_of(directory: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(directory.join("report.json")).unwrap()).unwrap()
}

#[test]
fn bench_runs_the_shipped_set_end_to_end_and_flags_a_regression() {
    let data = tempfile::tempdir().unwrap();
    let first = data.path().join("first");
    let set = problem_set();
    let output = leanfarm(&[
        "bench",
        set.to_str().unwrap(),
        "--simulate",
        "--sandbox",
        &leanfarm_testkit::test_backend_name(),
        "-k",
        "2",
        "--output",
        first.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let problem_count = problems().len();
    assert!(
        stdout.contains(&format!("solved {problem_count} of {problem_count}")),
        "{stdout}"
    );
    let report = report_of(&first);
    assert_eq!(report["summary"]["solved"], problem_count);
    assert_eq!(report["summary"]["pass_at"]["1"], 1.0);
    assert_eq!(report["summary"]["pass_at"]["2"], 1.0);
    assert_eq!(report["summary"]["totals"]["attempts"], 2 * problem_count);
    assert!(report["summary"]["time_to_proof_seconds"]["p99"].is_number());
    assert_eq!(report["summary"]["by_tag"]["inequality"]["solve_rate"], 1.0);
    assert_eq!(
        report["solves_over_time"].as_array().unwrap().len(),
        problem_count
    );
    let markdown = std::fs::read_to_string(first.join("report.md")).unwrap();
    assert!(markdown.contains("![solves over time](solves.svg)"));
    let svg = std::fs::read_to_string(first.join("solves.svg")).unwrap();
    assert!(svg.starts_with("<svg"));

    // The same set with one preamble that lean-sim reports as an error: that
    // problem can no longer be proved.
    let broken_set = data.path().join("broken.jsonl");
    let mut lines: Vec<Value> = problems();
    let broken_id = lines[0]["id"].as_str().unwrap().to_string();
    lines[0]["preamble"] = json!("open Real Nat\n-- sim: error this preamble does not elaborate");
    std::fs::write(
        &broken_set,
        lines
            .iter()
            .map(|line| line.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let second = data.path().join("second");
    let baseline = first.join("report.json");
    let run_against_baseline = |max_drop: &str| {
        leanfarm(&[
            "bench",
            broken_set.to_str().unwrap(),
            "--simulate",
            "--sandbox",
            &leanfarm_testkit::test_backend_name(),
            "--output",
            second.to_str().unwrap(),
            "--baseline",
            baseline.to_str().unwrap(),
            "--max-drop",
            max_drop,
        ])
    };
    let output = run_against_baseline("0");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("newly failed: {broken_id}")),
        "{stdout}"
    );
    assert!(
        stderr.contains("regression against the baseline"),
        "{stderr}"
    );
    let report = report_of(&second);
    assert_eq!(report["baseline"]["newly_failed"], json!([broken_id]));
    assert_eq!(report["baseline"]["regressed"], true);
    // A drop within the allowed points passes.
    let output = run_against_baseline("5");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn bench_refuses_bad_settings_before_it_starts_a_farm() {
    let data = tempfile::tempdir().unwrap();
    let set = problem_set();
    for (args, expected) in [
        (vec!["-k", "0"], "must be at least 1"),
        (vec!["--strategy", "beam"], "sample or refine"),
        (vec!["--max-drop=-1"], "--max-drop"),
        (vec!["--baseline", "/nonexistent/report.json"], "baseline"),
    ] {
        let mut all = vec!["bench", set.to_str().unwrap(), "--output"];
        let output_dir = data.path().join("out");
        all.push(output_dir.to_str().unwrap());
        all.extend(args);
        let output = leanfarm(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// `--premises` with an embedded farm whose `--farm-config` names a search
/// index: the prompts carry premises, so the same problems cost more tokens.
#[test]
fn bench_premises_come_from_the_index_its_farm_config_names() {
    let data = tempfile::tempdir().unwrap();
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/problems/library");
    let index = data.path().join("premises.sqlite");
    let output = leanfarm(&[
        "index",
        library.to_str().unwrap(),
        "-o",
        index.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let farm_config = data.path().join("farm.toml");
    std::fs::write(
        &farm_config,
        format!("search_index = {:?}\n", index.to_str().unwrap()),
    )
    .unwrap();
    let set = data.path().join("three.jsonl");
    let lines: Vec<String> = problems()[..3].iter().map(Value::to_string).collect();
    std::fs::write(&set, lines.join("\n") + "\n").unwrap();
    let backend = leanfarm_testkit::test_backend_name();
    let mut tokens = Vec::new();
    for (name, extra) in [
        ("without", vec![]),
        (
            "with",
            vec![
                "--farm-config",
                farm_config.to_str().unwrap(),
                "--premises",
                "5",
            ],
        ),
    ] {
        let report_dir = data.path().join(name);
        let mut args = vec![
            "bench",
            set.to_str().unwrap(),
            "--simulate",
            "--sandbox",
            &backend,
            "-o",
            report_dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let output = leanfarm(&args);
        assert!(output.status.success(), "{output:?}");
        let report = report_of(&report_dir);
        assert_eq!(report["summary"]["solved"], 3);
        tokens.push(report["summary"]["totals"]["tokens"].as_u64().unwrap());
    }
    assert!(tokens[1] > tokens[0], "{tokens:?}");
}
