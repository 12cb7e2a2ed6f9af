//! `leanfarm prove`: ask a farm (a server, or one started for the run) to
//! prove a theorem, show the search live (rounds, candidates, the best
//! verdict so far, budget use), print the proof, and exit non-zero unless
//! the theorem was proved.

use crate::config::{ServeArgs, TemporaryFarm};
use crate::CliError;
use clap::Args;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// The statement (`theorem NAME ... : TYPE`), or a .lean file holding imports, a preamble and the statement last
    pub statement: String,
    /// URL of a running farm; without it, a farm is started for this run
    #[arg(long, env = "LEAN_FARM_SERVER")]
    pub server: Option<String>,
    /// A user token for a farm that requires one
    #[arg(long, env = "LEAN_FARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With no --server: use lean-sim, the stand-in for Lean
    #[arg(long)]
    pub simulate: bool,
    /// The import header (with a statement given inline)
    #[arg(long, default_value = "")]
    pub header: String,
    /// Lines the statement is elaborated under (with a statement given inline)
    #[arg(long, default_value = "")]
    pub preamble: String,
    /// The model route
    #[arg(long, default_value = "dummy")]
    pub route: String,
    /// sample or refine
    #[arg(long, default_value = "sample")]
    pub strategy: String,
    /// Candidates per round
    #[arg(long, default_value_t = 4)]
    pub n: u32,
    /// Rounds at most
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Premises from the retriever in the prompt
    #[arg(long)]
    pub premises: Option<usize>,
    /// Budget: candidates at most
    #[arg(long, default_value_t = 16)]
    pub candidates: u64,
    /// Budget: model tokens at most
    #[arg(long, default_value_t = 100_000)]
    pub tokens: u64,
    /// Budget: Lean seconds at most
    #[arg(long, default_value_t = 600.0)]
    pub cpu_seconds: f64,
    /// Budget: wall seconds at most
    #[arg(long, default_value_t = 600.0)]
    pub wall_seconds: f64,
    /// Seconds allowed for each candidate's check
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Print the job as JSON at the end instead of the proof
    #[arg(long)]
    pub json: bool,
}

/// Imports, preamble and statement of a .lean file: the leading `import`
/// lines, the statement from the last `theorem`/`lemma` line (without a
/// `:= sorry` tail), and what lies between.
fn split_file(text: &str) -> (String, String, String) {
    let lines: Vec<&str> = text.lines().collect();
    let header_end = lines
        .iter()
        .position(|line| {
            let line = line.trim();
            !(line.is_empty() || line.starts_with("import ") || line.starts_with("--"))
        })
        .unwrap_or(lines.len());
    let statement_start = lines
        .iter()
        .rposition(|line| line.starts_with("theorem ") || line.starts_with("lemma "))
        .unwrap_or(header_end)
        .max(header_end);
    let header = lines[..header_end].join("\n");
    let preamble = lines[header_end..statement_start].join("\n");
    let mut statement = lines[statement_start..].join("\n").trim().to_string();
    for tail in [":= by sorry", ":= sorry", ":= by", ":="] {
        if let Some(stripped) = statement.strip_suffix(tail) {
            statement = stripped.trim_end().to_string();
            break;
        }
    }
    (
        header.trim().to_string(),
        preamble.trim().to_string(),
        statement,
    )
}

pub async fn run(args: ProveArgs) -> Result<(), CliError> {
    let path = PathBuf::from(&args.statement);
    let (header, preamble, statement) = if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| CliError::Config(format!("{}: {error}", path.display())))?;
        split_file(&text)
    } else {
        (
            args.header.clone(),
            args.preamble.clone(),
            args.statement.clone(),
        )
    };
    let mut embedded = None;
    let server = match &args.server {
        Some(server) => server.trim_end_matches('/').to_string(),
        None => {
            let mut settings = ServeArgs::default();
            settings.checker.simulate = args.simulate;
            settings.checker.lease_seconds = args.timeout + 30.0;
            let farm = TemporaryFarm::start(settings, "prove").await?;
            let url = farm.url();
            embedded = Some(farm);
            url
        }
    };
    let mut body = json!({
        "statement": statement,
        "header": header,
        "preamble": preamble,
        "route": args.route,
        "strategy": {"kind": args.strategy, "n": args.n, "rounds": args.rounds},
        "budget": {
            "candidates": args.candidates,
            "tokens": args.tokens,
            "cpu_seconds": args.cpu_seconds,
            "wall_seconds": args.wall_seconds,
        },
        "timeout_seconds": args.timeout,
    });
    if let Some(k) = args.premises {
        body["premises"] = json!({ "k": k });
    }
    let outcome = follow(&server, args.token.as_deref(), &body).await;
    if let Some(farm) = embedded {
        farm.stop().await;
    }
    let job = outcome?;
    if args.json {
        println!("{job}");
    } else if let Some(proof) = job["proof"].as_str() {
        println!("{proof}");
    }
    match job["state"].as_str() {
        Some("proved") => Ok(()),
        state => Err(CliError::NotProved(
            state.unwrap_or("unknown").to_string(),
            job["reason"].as_str().unwrap_or("").to_string(),
        )),
    }
}

async fn send(request: reqwest::RequestBuilder, token: Option<&str>) -> Result<Value, CliError> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request
        .send()
        .await
        .map_err(|error| CliError::Request(error.to_string()))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .map_err(|error| CliError::Request(error.to_string()))?;
    if !status.is_success() {
        return Err(CliError::Request(format!(
            "{status} {}: {}",
            value["code"].as_str().unwrap_or(""),
            value["message"].as_str().unwrap_or("no message")
        )));
    }
    Ok(value)
}

/// Submit and follow the job to its end, showing progress on a terminal.
async fn follow(server: &str, token: Option<&str>, body: &Value) -> Result<Value, CliError> {
    let client = reqwest::Client::new();
    let mut job = send(client.post(format!("{server}/v1/prove")).json(body), token).await?;
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let live = std::io::stderr().is_terminal();
    while job["state"] == "running" {
        job = send(client.get(format!("{server}/v1/prove/{id}?wait=2")), token).await?;
        if live {
            eprint!("\r\x1b[2K{}", progress_line(&job));
        }
    }
    if live {
        eprintln!();
    }
    eprintln!("leanfarm: prove job {id}: {}", progress_line(&job));
    Ok(job)
}

/// `round 2 · 6 candidates · best: lean_error · tokens 1200/100000 · 3.1 s`.
fn progress_line(job: &Value) -> String {
    let attempts = job["attempts"].as_array().cloned().unwrap_or_default();
    let round = attempts
        .iter()
        .filter_map(|attempt| attempt["round"].as_u64())
        .max()
        .unwrap_or(0);
    let rank = |status: &str| match status {
        "valid" => 0,
        "sorry" => 1,
        "lean_error" => 2,
        "timeout_error" => 3,
        "repl_error" => 4,
        _ => 5,
    };
    let best = attempts
        .iter()
        .filter_map(|attempt| attempt["verdict"]["status"].as_str())
        .min_by_key(|status| rank(status))
        .unwrap_or("none yet");
    let usage = &job["usage"];
    let budget = &job["budget"];
    format!(
        "{} · round {round} · {} candidates · best: {best} · tokens {}/{} · lean {:.1}/{} s · {:.1} s",
        job["state"].as_str().unwrap_or("?"),
        usage["candidates"],
        usage["tokens"],
        budget["tokens"],
        usage["cpu_seconds"].as_f64().unwrap_or(0.0),
        budget["cpu_seconds"],
        usage["wall_seconds"].as_f64().unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::split_file;

    #[test]
    fn a_file_splits_into_imports_preamble_and_the_last_statement() {
        let text = "import Mathlib\n\nopen Nat\n\ntheorem t (a : Nat) :\n  a = a := by sorry\n";
        let (header, preamble, statement) = split_file(text);
        assert_eq!(header, "import Mathlib");
        assert_eq!(preamble, "open Nat");
        assert_eq!(statement, "theorem t (a : Nat) :\n  a = a");
    }
}
