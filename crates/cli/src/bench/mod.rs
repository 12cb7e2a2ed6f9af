//! `leanfarm bench`: run a problem set through `/v1/prove` on a farm (a
//! server, or one started for the run), `k` prove jobs per problem, and
//! write report.json, report.md and solves.svg; compared with a baseline
//! report, exit non-zero when the solve rate drops by more than allowed.
//!
//! `report` computes everything from the outcomes (pure, tested on crafted
//! outcomes); `render` writes Markdown and SVG; this module only talks to
//! the farm and the file system.

mod render;
mod report;

use crate::config::{with_file, ServeArgs, TemporaryFarm};
use crate::CliError;
use clap::Args;
use futures::StreamExt;
use report::{build_report, AttemptOutcome, ProblemOutcome, Report};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The problem set: JSONL, one `{"id","statement","preamble"?,"header"?,"tags"?}` per line
    pub problems: PathBuf,
    /// URL of a running farm; without it, a farm is started for this run
    #[arg(long, env = "LEAN_FARM_SERVER")]
    pub server: Option<String>,
    /// A user token for a farm that requires one
    #[arg(long, env = "LEAN_FARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With no --server: use lean-sim, the stand-in for Lean
    #[arg(long)]
    pub simulate: bool,
    /// With no --server: the sandbox backend (native, gvisor, none)
    #[arg(long)]
    pub sandbox: Option<String>,
    /// With no --server: a TOML file of `serve` settings for the farm (model routes, limits)
    #[arg(long)]
    pub farm_config: Option<PathBuf>,
    /// The model route every prove job names
    #[arg(long, default_value = "dummy")]
    pub route: String,
    /// The search strategy: sample or refine
    #[arg(long, default_value = "sample")]
    pub strategy: String,
    /// Candidates per round
    #[arg(long, default_value_t = 4)]
    pub n: u32,
    /// Rounds at most
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Premises retrieved into each prompt (none if unset)
    #[arg(long)]
    pub premises: Option<usize>,
    /// Budget of each prove job: candidates
    #[arg(long, default_value_t = 16)]
    pub budget_candidates: u64,
    /// Budget of each prove job: model tokens
    #[arg(long, default_value_t = 100_000)]
    pub budget_tokens: u64,
    /// Budget of each prove job: Lean CPU-seconds
    #[arg(long, default_value_t = 120.0)]
    pub budget_cpu_seconds: f64,
    /// Budget of each prove job: wall seconds
    #[arg(long, default_value_t = 600.0)]
    pub budget_wall_seconds: f64,
    /// Prove jobs per problem (pass@k)
    #[arg(long, short = 'k', default_value_t = 1)]
    pub k: usize,
    /// Prove jobs running at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Directory for report.json, report.md and solves.svg
    #[arg(long, short = 'o', default_value = "bench-report")]
    pub output: PathBuf,
    /// An earlier report.json to compare with
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// With --baseline: the solve-rate drop, in percentage points, beyond which the run fails
    #[arg(long, default_value_t = 0.0)]
    pub max_drop: f64,
}

/// One problem of the set.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    pub id: String,
    pub statement: String,
    #[serde(default)]
    pub preamble: String,
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The problems of a JSONL set; ids must be non-empty and distinct.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Config(format!("{}: {error}", path.display())))?;
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), index + 1);
        let problem: Problem = serde_json::from_str(line)
            .map_err(|error| CliError::Config(format!("{}: {error}", at())))?;
        if problem.id.trim().is_empty() || problem.statement.trim().is_empty() {
            return Err(CliError::Config(format!(
                "{}: `id` and `statement` must not be empty",
                at()
            )));
        }
        if !ids.insert(problem.id.clone()) {
            return Err(CliError::Config(format!(
                "{}: the id `{}` is used twice",
                at(),
                problem.id
            )));
        }
        problems.push(problem);
    }
    if problems.is_empty() {
        return Err(CliError::Config(format!(
            "{} holds no problem",
            path.display()
        )));
    }
    Ok(problems)
}

fn validate(args: &BenchArgs) -> Result<(), CliError> {
    if args.k == 0 || args.concurrency == 0 {
        return Err(CliError::Config(
            "`-k` and `--concurrency` must be at least 1".into(),
        ));
    }
    if !matches!(args.strategy.as_str(), "sample" | "refine") {
        return Err(CliError::Config(format!(
            "`--strategy` is sample or refine, not `{}`",
            args.strategy
        )));
    }
    if !(args.max_drop.is_finite() && args.max_drop >= 0.0) {
        return Err(CliError::Config(
            "`--max-drop` must be a number of points, at least 0".into(),
        ));
    }
    Ok(())
}

fn read_baseline(path: &Path) -> Result<Report, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Config(format!("baseline {}: {error}", path.display())))?;
    serde_json::from_str(&text).map_err(|error| {
        CliError::Config(format!(
            "baseline {} is not a report.json: {error}",
            path.display()
        ))
    })
}

/// The body of `POST /v1/prove` for one problem.
fn prove_body(args: &BenchArgs, problem: &Problem) -> Value {
    let mut body = json!({
        "statement": problem.statement,
        "preamble": problem.preamble,
        "header": problem.header,
        "route": args.route,
        "strategy": { "kind": args.strategy, "n": args.n, "rounds": args.rounds },
        "budget": {
            "candidates": args.budget_candidates,
            "tokens": args.budget_tokens,
            "cpu_seconds": args.budget_cpu_seconds,
            "wall_seconds": args.budget_wall_seconds,
        },
    });
    if let Some(k) = args.premises {
        body["premises"] = json!({ "k": k });
    }
    body
}

/// The farm's prove API, as this run's client.
struct FarmClient<'a> {
    client: reqwest::Client,
    server: String,
    token: Option<&'a str>,
}

impl FarmClient<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.server));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `(status, JSON body)`, or why the farm could not be asked.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let response = request.send().await.map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .json()
            .await
            .map_err(|error| format!("{status}: the answer is not JSON: {error}"))?;
        Ok((status, body))
    }

    /// Submit one prove job and wait for its end (at most the budget's wall
    /// time and a minute; then it is cancelled).
    async fn prove(&self, body: &Value, wall_seconds: f64) -> Result<Value, String> {
        let (status, job) = self
            .call(self.request(reqwest::Method::POST, "/v1/prove").json(body))
            .await?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "{status} {}: {}",
                job["code"].as_str().unwrap_or("?"),
                job["message"].as_str().unwrap_or("no message")
            ));
        }
        let id = job["id"]
            .as_str()
            .ok_or("the prove job has no id")?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs_f64(wall_seconds.min(86_400.0) + 60.0);
        let mut job = job;
        while job["state"] == "running" || job["state"] == "queued" {
            if Instant::now() > deadline {
                let _ = self
                    .call(self.request(reqwest::Method::DELETE, &format!("/v1/prove/{id}")))
                    .await;
                return Err(format!("prove job {id} did not end within its wall budget"));
            }
            let (status, next) = self
                .call(self.request(reqwest::Method::GET, &format!("/v1/prove/{id}?wait=30")))
                .await?;
            if status != 200 {
                return Err(format!(
                    "{status} {}: {}",
                    next["code"].as_str().unwrap_or("?"),
                    next["message"].as_str().unwrap_or("no message")
                ));
            }
            job = next;
        }
        Ok(job)
    }
}

/// An outcome from the final prove job, or from why there is none.
fn outcome_of(result: Result<Value, String>, finished_at_seconds: f64) -> AttemptOutcome {
    let job = match result {
        Ok(job) => job,
        Err(reason) => {
            return AttemptOutcome {
                state: "error".into(),
                reason: Some(reason),
                proof: None,
                finished_at_seconds,
                wall_seconds: 0.0,
                candidates: 0,
                tokens: 0,
                cost: 0.0,
                cpu_seconds: 0.0,
            }
        }
    };
    let usage = &job["usage"];
    AttemptOutcome {
        state: job["state"].as_str().unwrap_or("error").to_string(),
        reason: job["reason"].as_str().map(str::to_string),
        proof: job["proof"].as_str().map(str::to_string),
        finished_at_seconds,
        wall_seconds: usage["wall_seconds"].as_f64().unwrap_or(0.0),
        candidates: usage["candidates"].as_u64().unwrap_or(0),
        tokens: usage["tokens"].as_u64().unwrap_or(0),
        cost: usage["cost"].as_f64().unwrap_or(0.0),
        cpu_seconds: usage["cpu_seconds"].as_f64().unwrap_or(0.0),
    }
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    validate(&args)?;
    let problems = read_problems(&args.problems)?;
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    std::fs::create_dir_all(&args.output).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", args.output.display()))
    })?;
    let mut embedded = None;
    let server = match &args.server {
        Some(server) => server.trim_end_matches('/').to_string(),
        None => {
            let mut settings = ServeArgs {
                config: args.farm_config.clone(),
                ..ServeArgs::default()
            };
            settings.checker.simulate = args.simulate;
            if let Some(sandbox) = &args.sandbox {
                settings.checker.sandbox.sandbox = sandbox.clone();
            }
            let explicit = ["addr", "data_dir", "simulate", "sandbox"].map(String::from);
            let settings = with_file(settings, &explicit)?;
            let farm = TemporaryFarm::start(settings, "bench").await?;
            let url = farm.url();
            embedded = Some(farm);
            url
        }
    };
    let farm = FarmClient {
        client: reqwest::Client::new(),
        server: server.clone(),
        token: args.token.as_deref(),
    };
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let jobs: Vec<(usize, Value)> = problems
        .iter()
        .enumerate()
        .flat_map(|(index, problem)| {
            let body = prove_body(&args, problem);
            (0..args.k).map(move |_| (index, body.clone()))
        })
        .collect();
    let total = jobs.len();
    let mut outcomes: Vec<Vec<AttemptOutcome>> = vec![Vec::new(); problems.len()];
    let mut finished = futures::stream::iter(jobs)
        .map(|(index, body)| {
            let farm = &farm;
            let wall = args.budget_wall_seconds;
            async move {
                let result = farm.prove(&body, wall).await;
                (index, outcome_of(result, started.elapsed().as_secs_f64()))
            }
        })
        .buffer_unordered(args.concurrency);
    let mut done = 0;
    let mut proved = 0;
    while let Some((index, outcome)) = finished.next().await {
        done += 1;
        proved += usize::from(outcome.is_proved());
        if outcome.state == "error" {
            tracing::warn!(problem = %problems[index].id, reason = ?outcome.reason, "prove job failed");
        }
        outcomes[index].push(outcome);
        if progress {
            eprint!(
                "\rbench: {done}/{total} prove jobs, {proved} proved, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(finished);
    if progress {
        eprintln!();
    }
    let run_seconds = started.elapsed().as_secs_f64();
    if let Some(farm) = embedded {
        farm.stop().await;
    }
    let problem_outcomes: Vec<ProblemOutcome> = problems
        .iter()
        .zip(outcomes)
        .map(|(problem, attempts)| ProblemOutcome {
            id: problem.id.clone(),
            tags: problem.tags.clone(),
            attempts,
        })
        .collect();
    let run = json!({
        "problem_set": args.problems.display().to_string(),
        "server": args.server.clone().unwrap_or_else(|| "embedded".into()),
        "route": args.route,
        "strategy": { "kind": args.strategy, "n": args.n, "rounds": args.rounds },
        "premises": args.premises,
        "budget": {
            "candidates": args.budget_candidates,
            "tokens": args.budget_tokens,
            "cpu_seconds": args.budget_cpu_seconds,
            "wall_seconds": args.budget_wall_seconds,
        },
        "k": args.k,
        "run_seconds": run_seconds,
    });
    let report = build_report(
        run,
        problem_outcomes,
        baseline.as_ref().map(|baseline| (baseline, args.max_drop)),
    );
    write_outputs(&args.output, &report, run_seconds)?;
    let summary = &report.summary;
    println!(
        "bench: solved {} of {} ({:.1} %), pass@1 {:.3}, time to proof p50 {} p99 {}; report in {}",
        summary.solved,
        summary.problems,
        summary.solve_rate * 100.0,
        summary.pass_at.get("1").copied().unwrap_or(0.0),
        summary
            .time_to_proof_seconds
            .p50
            .map_or("–".into(), |s| format!("{s:.2} s")),
        summary
            .time_to_proof_seconds
            .p99
            .map_or("–".into(), |s| format!("{s:.2} s")),
        args.output.join("report.md").display()
    );
    if let Some(comparison) = &report.baseline {
        println!(
            "bench: against the baseline: {} newly solved, {} newly failed, solve rate {:+.1} points",
            comparison.newly_solved.len(),
            comparison.newly_failed.len(),
            -comparison.drop_points
        );
        for id in &comparison.newly_failed {
            println!("bench: newly failed: {id}");
        }
        for id in &comparison.newly_solved {
            println!("bench: newly solved: {id}");
        }
        if comparison.regressed {
            return Err(CliError::Regression(format!(
                "the solve rate dropped {:.1} points; at most {:.1} are allowed",
                comparison.drop_points, comparison.max_drop_points
            )));
        }
    }
    Ok(())
}

fn write_outputs(directory: &Path, report: &Report, run_seconds: f64) -> Result<(), CliError> {
    let write = |name: &str, text: String| {
        let path = directory.join(name);
        std::fs::write(&path, text)
            .map_err(|error| CliError::Config(format!("cannot write {}: {error}", path.display())))
    };
    let json = serde_json::to_string_pretty(report)
        .map_err(|error| CliError::Config(format!("cannot encode the report: {error}")))?;
    write("report.json", json + "\n")?;
    write(
        "solves.svg",
        render::solves_svg(
            &report.solves_over_time,
            report.summary.problems,
            run_seconds,
        ),
    )?;
    write("report.md", render::markdown(report, "solves.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_problem_set_reads_with_distinct_ids_and_tags() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/problems/minif2f-style.jsonl");
        let problems = read_problems(&path).unwrap();
        assert!(problems.len() >= 30, "{}", problems.len());
        for problem in &problems {
            assert!(!problem.tags.is_empty(), "{}", problem.id);
            assert!(problem.statement.starts_with("theorem "), "{}", problem.id);
            assert!(!problem.statement.contains(":="), "{}", problem.id);
        }
    }

    #[test]
    fn a_bad_problem_set_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        for (text, expected) in [
            ("{\"id\":\"a\",\"statement\":\"theorem a : True\"}\n{\"id\":\"a\",\"statement\":\"theorem b : True\"}\n", "line 2: the id `a` is used twice"),
            ("{\"id\":\"\",\"statement\":\"theorem a : True\"}\n", "line 1: `id` and `statement` must not be empty"),
            ("{\"id\":\"a\"}\n", "line 1: missing field `statement`"),
            ("\n\n", "holds no problem"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = read_problems(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn an_answer_becomes_an_outcome_and_a_failure_an_error_outcome() {
        let job = json!({
            "id": "p1", "state": "proved", "proof": "by simp", "reason": null,
            "usage": {"candidates": 3, "tokens": 120, "cost": 0.25, "cpu_seconds": 1.5, "wall_seconds": 2.0}
        });
        let outcome = outcome_of(Ok(job), 7.0);
        assert!(outcome.is_proved());
        assert_eq!(outcome.proof.as_deref(), Some("by simp"));
        assert_eq!((outcome.candidates, outcome.tokens), (3, 120));
        assert_eq!(
            (outcome.cost, outcome.cpu_seconds, outcome.wall_seconds),
            (0.25, 1.5, 2.0)
        );
        assert_eq!(outcome.finished_at_seconds, 7.0);
        let error = outcome_of(Err("404 not_found: no route".into()), 1.0);
        assert_eq!(error.state, "error");
        assert_eq!(error.reason.as_deref(), Some("404 not_found: no route"));
    }
}
