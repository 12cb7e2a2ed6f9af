//! `leanfarm conformance`: run the conformance kit (`conformance/*.toml`,
//! see docs/conformance.md) through an embedded driver, the same `Driver`
//! the farm's workers use, against a real Lean toolchain or lean-sim, and
//! report for each case whether the farm's verdict is the one the case
//! expects.
//!
//! The kit is the judge here, not the farm: this module must never adjust an
//! expected verdict to what the farm says, and a case that cannot run (the
//! driver failed) counts as a failure, never as a pass. It only reads the
//! kit; it never writes to it.

use crate::config::CheckerArgs;
use crate::CliError;
use clap::{Args, ValueEnum};
use leanfarm_core::{CheckRequest, CheckStatus, Policy, ReasonCode};
use leanfarm_driver::Driver;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The classes of the kit, in the order the report lists them. Every case
/// belongs to one; every class holds at least one case.
pub const CLASSES: &[&str] = &[
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

#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// The directory of the kit's `.toml` files
    #[arg(long, default_value = "conformance")]
    pub kit: PathBuf,
    /// Run only the cases of this class (header, lexer_hiding, code_execution, pinned_statements, hidden_names, nonce_audit, empty, sorry, axioms, native_decide, honest)
    #[arg(long)]
    pub only: Option<String>,
    /// How to print the results: a table for people, or one JSON document for machines
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Seconds allowed for each case's check (the header's import aside)
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub checker: CheckerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// One case of the kit: a snippet as a user would send it, the policy it is
/// checked under, and the verdict the farm must give.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique in the kit; kebab-case.
    pub id: String,
    /// One of `CLASSES`.
    pub class: String,
    /// What the case attacks or shows, in a sentence.
    #[serde(default)]
    pub about: Option<String>,
    /// The Lean source a user would send, header included; real Lean 4 (and
    /// Mathlib) syntax that a real toolchain treats as the case says.
    pub code: String,
    /// The same behaviour written for lean-sim, with `-- sim:` directives,
    /// where lean-sim cannot model the case from `code` alone.
    #[serde(default)]
    pub sim_code: Option<String>,
    /// The API's policy object; absent means the API's default policy.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// The expected status.
    pub status: CheckStatus,
    /// The expected reason code; absent exactly when `status` is `valid`.
    #[serde(default)]
    pub reason: Option<ReasonCode>,
}

impl Case {
    /// The source to check: `sim_code` under lean-sim when there is one.
    pub fn source(&self, simulate: bool) -> &str {
        match (&self.sim_code, simulate) {
            (Some(sim_code), true) => sim_code,
            _ => &self.code,
        }
    }

    /// Why this case is not well formed, if it is not.
    fn problem(&self) -> Option<String> {
        if self.id.trim().is_empty() {
            return Some("the id is empty".to_string());
        }
        if !CLASSES.contains(&self.class.as_str()) {
            return Some(format!(
                "unknown class `{}` (known: {})",
                self.class,
                CLASSES.join(", ")
            ));
        }
        match (self.status, self.reason) {
            (CheckStatus::Valid, Some(reason)) => {
                return Some(format!("status `valid` cannot carry the reason `{reason}`"))
            }
            (CheckStatus::Valid, None) => {}
            (status, None) => {
                return Some(format!("status `{}` needs a reason code", status.as_str()))
            }
            (status, Some(reason)) if reason.status() != status => {
                return Some(format!(
                    "the reason `{reason}` belongs to status `{}`, not `{}`",
                    reason.status().as_str(),
                    status.as_str()
                ))
            }
            _ => {}
        }
        if let Some(pinned) = self.policy.as_ref().and_then(|p| p.pinned.as_ref()) {
            if let Err(error) = pinned.signature() {
                return Some(format!("the pinned statement is refused: {error}"));
            }
        }
        if self
            .sim_code
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Some("`sim_code` is empty (leave it out to use `code`)".to_string());
        }
        None
    }
}

/// Why the kit cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("cannot read the kit at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: case `{id}`: {problem}")]
    InvalidCase {
        path: PathBuf,
        id: String,
        problem: String,
    },
    #[error("{path}: the case id `{id}` is used twice")]
    DuplicateId { path: PathBuf, id: String },
    #[error("the kit at {0} holds no case (expected `.toml` files with `[[case]]` tables)")]
    Empty(PathBuf),
    #[error("unknown class `{0}` (known: {known})", known = CLASSES.join(", "))]
    UnknownClass(String),
}

/// One kit file: its cases as `[[case]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KitFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// Every case of the kit in `dir`, file by file in name order, each checked
/// to be well formed, ids unique across the kit.
pub fn load_kit(dir: &Path) -> Result<Vec<Case>, KitError> {
    let read_error = |source| KitError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut ids = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| KitError::Read {
            path: path.clone(),
            source,
        })?;
        let file: KitFile = toml::from_str(&text).map_err(|error| KitError::Parse {
            path: path.clone(),
            message: error.to_string(),
        })?;
        for case in file.case {
            if let Some(problem) = case.problem() {
                return Err(KitError::InvalidCase {
                    path,
                    id: case.id,
                    problem,
                });
            }
            if !ids.insert(case.id.clone()) {
                return Err(KitError::DuplicateId { path, id: case.id });
            }
            cases.push(case);
        }
    }
    if cases.is_empty() {
        return Err(KitError::Empty(dir.to_path_buf()));
    }
    Ok(cases)
}

/// What the farm said about one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub id: String,
    pub class: String,
    pub expected_status: CheckStatus,
    pub expected_reason: Option<ReasonCode>,
    /// The verdict's status and reason; `None` when the driver failed.
    pub got_status: Option<CheckStatus>,
    pub got_reason: Option<ReasonCode>,
    /// The verdict's reason message, or the driver's error.
    pub detail: String,
    pub ok: bool,
}

fn verdict_text(status: Option<CheckStatus>, reason: Option<ReasonCode>) -> String {
    match (status, reason) {
        (None, _) => "driver error".to_string(),
        (Some(status), None) => status.as_str().to_string(),
        (Some(status), Some(reason)) => format!("{}/{reason}", status.as_str()),
    }
}

async fn run_case(driver: Driver, case: Case, simulate: bool, timeout: f64) -> Outcome {
    let request = CheckRequest {
        custom_id: Some(case.id.clone()),
        code: case.source(simulate).to_string(),
        timeout_seconds: timeout,
        policy: case.policy.clone().unwrap_or_default(),
        infotree: None,
        trace_context: None,
    };
    let (got_status, got_reason, detail) = match driver.check(&request).await {
        Ok(verdict) => {
            let reason = verdict.reason().map(|reason| reason.code);
            let detail = verdict
                .reason()
                .map(|reason| reason.message.clone())
                .unwrap_or_default();
            (Some(verdict.status()), reason, detail)
        }
        Err(error) => (None, None, format!("the driver failed: {error}")),
    };
    let ok = got_status == Some(case.status) && got_reason == case.reason;
    Outcome {
        id: case.id,
        class: case.class,
        expected_status: case.status,
        expected_reason: case.reason,
        got_status,
        got_reason,
        detail,
        ok,
    }
}

/// Run the kit; `Err` when a case fails or the kit or driver cannot be used.
pub async fn run(args: ConformanceArgs) -> Result<(), CliError> {
    if let Some(class) = &args.only {
        if !CLASSES.contains(&class.as_str()) {
            return Err(CliError::Config(
                KitError::UnknownClass(class.clone()).to_string(),
            ));
        }
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(CliError::Config(format!(
            "--timeout must be a positive number of seconds, not {}",
            args.timeout
        )));
    }
    let cases: Vec<Case> = load_kit(&args.kit)
        .map_err(|error| CliError::Config(error.to_string()))?
        .into_iter()
        .filter(|case| args.only.as_ref().is_none_or(|class| *class == case.class))
        .collect();
    if cases.is_empty() {
        return Err(CliError::Config(format!(
            "the kit at {} holds no case of class `{}`",
            args.kit.display(),
            args.only.as_deref().unwrap_or_default()
        )));
    }
    let data_dir =
        std::env::temp_dir().join(format!("leanfarm-conformance-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&data_dir).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", data_dir.display()))
    })?;
    let slots = args.checker.slots();
    let outcomes = match args.checker.build_driver(&data_dir, slots) {
        Ok(driver) => {
            let outcomes = run_cases(&driver, cases, &args, slots).await;
            driver.shutdown().await;
            outcomes
        }
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    let outcomes = outcomes?;
    let failed = outcomes.iter().filter(|outcome| !outcome.ok).count();
    let passed = outcomes.len() - failed;
    match args.format {
        OutputFormat::Table => print_table(&outcomes),
        OutputFormat::Json => println!(
            "{}",
            json!({ "passed": passed, "failed": failed, "cases": outcomes })
        ),
    }
    if args.format == OutputFormat::Table {
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        return Err(CliError::ConformanceFailed(failed, outcomes.len()));
    }
    Ok(())
}

/// Every case, at most `slots` at a time, in kit order.
async fn run_cases(
    driver: &Driver,
    cases: Vec<Case>,
    args: &ConformanceArgs,
    slots: usize,
) -> Result<Vec<Outcome>, CliError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
    let mut tasks = Vec::new();
    for case in cases {
        let permits = Arc::clone(&permits);
        let driver = driver.clone();
        let simulate = args.checker.simulate;
        let timeout = args.timeout;
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            run_case(driver, case, simulate, timeout).await
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(
            task.await
                .map_err(|error| CliError::Startup(format!("a case's check panicked: {error}")))?,
        );
    }
    Ok(outcomes)
}

fn print_table(outcomes: &[Outcome]) {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|outcome| {
            [
                outcome.id.clone(),
                outcome.class.clone(),
                verdict_text(Some(outcome.expected_status), outcome.expected_reason),
                verdict_text(outcome.got_status, outcome.got_reason),
                if outcome.ok { "ok" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    let header = ["case", "class", "expected", "got", ""].map(str::to_string);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        println!("{}", line.trim_end());
    }
    for outcome in outcomes.iter().filter(|outcome| !outcome.ok) {
        println!("FAIL {}: {}", outcome.id, outcome.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
    }

    /// The kit parses, every case is well formed (known class, a known
    /// reason code of its status, a pinned statement the API accepts), and
    /// it holds what the kit promises: every class, at least three hostile
    /// cases in each and ten honest controls.
    #[test]
    fn the_kit_parses_and_every_case_is_well_formed() {
        let cases = load_kit(&kit_dir()).unwrap();
        assert!(cases.len() >= 40, "only {} cases", cases.len());
        for class in CLASSES {
            let in_class: Vec<&Case> = cases.iter().filter(|c| c.class == *class).collect();
            if *class == "honest" {
                assert!(in_class.len() >= 10, "{class}: {}", in_class.len());
                assert!(
                    in_class.iter().all(|c| c.status == CheckStatus::Valid),
                    "every honest control must be valid"
                );
            } else {
                let hostile = in_class
                    .iter()
                    .filter(|c| c.status != CheckStatus::Valid)
                    .count();
                assert!(hostile >= 3, "{class}: {hostile} hostile cases");
            }
        }
        for case in &cases {
            assert_eq!(case.problem(), None, "{}", case.id);
            if let Some(reason) = case.reason {
                assert!(ReasonCode::ALL.contains(&reason), "{}", case.id);
            }
        }
    }

    fn case(status: CheckStatus, reason: Option<ReasonCode>) -> Case {
        Case {
            id: "c".into(),
            class: "sorry".into(),
            about: None,
            code: "theorem t : True := sorry".into(),
            sim_code: None,
            policy: None,
            status,
            reason,
        }
    }

    #[test]
    fn a_status_and_reason_that_disagree_are_refused() {
        assert_eq!(
            case(CheckStatus::Sorry, Some(ReasonCode::UsesSorry)).problem(),
            None
        );
        for (status, reason, expected) in [
            (
                CheckStatus::Valid,
                Some(ReasonCode::UsesSorry),
                "cannot carry",
            ),
            (CheckStatus::Sorry, None, "needs a reason"),
            (
                CheckStatus::LeanError,
                Some(ReasonCode::UsesSorry),
                "belongs to status `sorry`",
            ),
        ] {
            let problem = case(status, reason).problem().expect("refused");
            assert!(problem.contains(expected), "{problem}");
        }
    }

    #[test]
    fn unknown_classes_bad_pins_and_empty_sim_code_are_refused() {
        let mut unknown = case(CheckStatus::Valid, None);
        unknown.class = "misc".into();
        assert!(unknown.problem().unwrap().contains("unknown class `misc`"));

        let mut bad_pin = case(CheckStatus::Valid, None);
        bad_pin.policy = Some(Policy {
            pinned: Some(leanfarm_core::PinnedStatement {
                name: "t".into(),
                statement: "def t : True".into(),
                preamble: None,
            }),
            ..Policy::default()
        });
        assert!(bad_pin.problem().unwrap().contains("pinned statement"));

        let mut empty_sim = case(CheckStatus::Valid, None);
        empty_sim.sim_code = Some(" ".into());
        assert!(empty_sim.problem().unwrap().contains("sim_code"));
        assert_eq!(empty_sim.source(false), empty_sim.code);
    }

    fn write_kit(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), text).unwrap();
        dir
    }

    #[test]
    fn unknown_reason_codes_fields_and_duplicate_ids_are_refused() {
        let dir = write_kit(
            "[[case]]\nid = \"x\"\nclass = \"sorry\"\ncode = \"\"\nstatus = \"sorry\"\nreason = \"uses_magic\"\n",
        );
        let error = load_kit(dir.path()).unwrap_err().to_string();
        assert!(error.contains("uses_magic"), "{error}");

        let dir = write_kit(
            "[[case]]\nid = \"x\"\nclass = \"sorry\"\ncode = \"\"\nstatus = \"valid\"\nexpected = 1\n",
        );
        let error = load_kit(dir.path()).unwrap_err().to_string();
        assert!(error.contains("expected"), "{error}");

        let one = "[[case]]\nid = \"x\"\nclass = \"honest\"\ncode = \"theorem t : True := trivial\"\nstatus = \"valid\"\n";
        let dir = write_kit(&format!("{one}{one}"));
        assert!(matches!(
            load_kit(dir.path()),
            Err(KitError::DuplicateId { .. })
        ));

        let dir = write_kit("");
        assert!(matches!(load_kit(dir.path()), Err(KitError::Empty(_))));
        assert!(matches!(
            load_kit(&dir.path().join("missing")),
            Err(KitError::Read { .. })
        ));
    }

    #[test]
    fn sim_code_is_used_only_under_lean_sim() {
        let mut with_sim = case(CheckStatus::Valid, None);
        with_sim.sim_code = Some("-- sim: axioms t sorryAx".into());
        assert_eq!(with_sim.source(true), "-- sim: axioms t sorryAx");
        assert_eq!(with_sim.source(false), with_sim.code);
    }
}
