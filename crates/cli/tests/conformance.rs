//! The conformance kit (`conformance/` at the repository root) through the
//! real `leanfarm conformance --simulate`: every case gets the verdict it
//! expects, every class of the kit is run, and a case the farm does not
//! meet, or a kit that cannot be read, makes the command fail.

use leanfarm_testkit::test_backend_name;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The classes the kit promises (docs/conformance.md).
const CLASSES: &[&str] = &[
    "header",
    "lexer_hiding",
    "code_execution",
    "pinned_statements",
    "hidden_names",
    "nonce_audit",
    "empty",
    "sorry",
    "axioms",
    "native_decide",
    "honest",
];

fn kit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

fn conformance(kit: &Path, extra: &[&str]) -> Output {
    let backend = test_backend_name();
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .arg("conformance")
        .arg("--simulate")
        .args(["--sandbox", backend.as_str(), "--kit"])
        .arg(kit)
        .args(extra)
        .env_remove("LEAN_FARM_REPL")
        .env_remove("LEAN_FARM_LEAN_PROJECT")
        .output()
        .expect("run leanfarm conformance")
}

/// The number of `[[case]]` tables in the kit's files.
fn cases_in_kit() -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(kit_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let value: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            count += value["case"].as_array().map_or(0, Vec::len);
        }
    }
    count
}

#[test]
fn every_case_of_the_kit_gets_its_expected_verdict_under_lean_sim() {
    let output = conformance(&kit_dir(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let total = cases_in_kit();
    assert!(total >= 40, "the kit holds {total} cases");
    assert_eq!(
        stdout.lines().last(),
        Some(format!("{total} passed, 0 failed").as_str()),
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .take(total)
        .map(|line| line.split_whitespace().collect())
        .collect();
    for class in CLASSES {
        assert!(
            rows.iter().any(|row| row.get(1) == Some(class)),
            "no case of class {class} ran:\n{stdout}"
        );
    }
    assert!(rows.iter().all(|row| row.last() == Some(&"ok")), "{stdout}");
}

#[test]
fn json_output_lists_every_case_and_only_filters_by_class() {
    let output = conformance(&kit_dir(), &["--format", "json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["passed"], cases_in_kit(), "{report}");
    let cases = report["cases"].as_array().unwrap();
    for class in CLASSES {
        assert!(cases.iter().any(|case| case["class"] == *class), "{class}");
    }

    let output = conformance(&kit_dir(), &["--format", "json", "--only", "sorry"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    assert!(
        cases.iter().all(|case| case["class"] == "sorry"),
        "{report}"
    );
    assert!(cases
        .iter()
        .all(|case| case["got_status"] == "sorry" && case["got_reason"] == "uses_sorry"));
}

#[test]
fn a_case_the_farm_does_not_meet_fails_the_run() {
    let kit = tempfile::tempdir().unwrap();
    std::fs::write(
        kit.path().join("wrong.toml"),
        r#"
[[case]]
id = "sorry-expected-valid"
class = "sorry"
code = "theorem t : 1 = 2 := by sorry"
status = "valid"

[[case]]
id = "honest-valid"
class = "honest"
code = "theorem t : True := trivial"
status = "valid"
"#,
    )
    .unwrap();
    let output = conformance(kit.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 1 failed"),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("sorry-expected-valid "))
        .expect("the failing case's row");
    assert!(
        row.contains("sorry/uses_sorry") && row.ends_with("FAIL"),
        "{row}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("1 of 2 conformance cases failed"),
        "{output:?}"
    );
}

#[test]
fn a_kit_that_cannot_be_read_is_a_usage_error() {
    let kit = tempfile::tempdir().unwrap();
    std::fs::write(
        kit.path().join("bad.toml"),
        "[[case]]\nid = \"x\"\nclass = \"sorry\"\ncode = \"\"\nstatus = \"sorry\"\nreason = \"uses_magic\"\n",
    )
    .unwrap();
    let output = conformance(kit.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("uses_magic"),
        "{stderr}"
    );

    let honest_only = tempfile::tempdir().unwrap();
    std::fs::write(
        honest_only.path().join("honest.toml"),
        "[[case]]\nid = \"x\"\nclass = \"honest\"\ncode = \"theorem t : True := trivial\"\nstatus = \"valid\"\n",
    )
    .unwrap();
    let output = conformance(honest_only.path(), &["--only", "sorry"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no case of class `sorry`"));

    let output = conformance(&kit_dir(), &["--only", "misc"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown class `misc`"));
}
