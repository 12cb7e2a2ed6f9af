//! `leanfarm check`: submit .lean files to a farm (a server, or one started
//! for the run), print a table of verdicts, and exit non-zero unless every
//! proof is valid.

use crate::config::{start_farm, ServeArgs};
use crate::CliError;
use clap::Args;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Snippets per request.
const BATCH: usize = 64;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// .lean files, or directories searched for them
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// URL of a running farm; without it, a farm is started for this run
    #[arg(long, env = "LEAN_FARM_SERVER")]
    pub server: Option<String>,
    /// A user token for a farm that requires one (`leanfarm tenant key`)
    #[arg(long, env = "LEAN_FARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// --server, besides the system's roots
    #[arg(long, env = "LEAN_FARM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// With no --server: use lean-sim, the stand-in for Lean
    #[arg(long)]
    pub simulate: bool,
    /// With no --server: the sandbox backend (native, gvisor, none)
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Seconds allowed for each check
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Print one JSON object per file instead of a table
    #[arg(long)]
    pub json: bool,
}

fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    fn walk(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, files)?;
            }
        } else if path
            .extension()
            .is_some_and(|extension| extension == "lean")
        {
            files.push(path.to_path_buf());
        }
        Ok(())
    }
    for path in paths {
        if !path.exists() {
            return Err(CliError::Config(format!(
                "{} does not exist",
                path.display()
            )));
        }
        if path.is_file() {
            files.push(path.clone());
        } else {
            walk(path, &mut files)
                .map_err(|error| CliError::Config(format!("{}: {error}", path.display())))?;
        }
    }
    if files.is_empty() {
        return Err(CliError::Config("no .lean files found".to_string()));
    }
    Ok(files)
}

pub async fn run(args: CheckArgs) -> Result<(), CliError> {
    let files = collect_files(&args.paths)?;
    let mut embedded = None;
    let server = match &args.server {
        Some(server) => server.trim_end_matches('/').to_string(),
        None => {
            let data_dir = tempfile_dir()?;
            let mut settings = ServeArgs {
                addr: ([127, 0, 0, 1], 0).into(),
                data_dir: data_dir.clone(),
                ..ServeArgs::default()
            };
            settings.checker.simulate = args.simulate;
            if let Some(sandbox) = &args.sandbox {
                settings.checker.sandbox.sandbox = sandbox.clone();
            }
            settings.checker.lease_seconds = args.timeout + 30.0;
            let farm = start_farm(settings).await?;
            let url = format!("http://{}", farm.local_addr);
            embedded = Some((farm, data_dir));
            url
        }
    };
    let client = leanfarm_worker::tls::client_builder(args.ca_cert.as_deref())
        .map_err(|error| CliError::Config(format!("--ca-cert: {error}")))?
        .build()
        .map_err(|error| CliError::Config(format!("cannot build the http client: {error}")))?;
    let progress = std::io::stderr().is_terminal() && files.len() > 1;
    let mut rows: Vec<(PathBuf, Value)> = Vec::new();
    for chunk in files.chunks(BATCH) {
        let mut snippets = Vec::new();
        for file in chunk {
            let code = std::fs::read_to_string(file)
                .map_err(|error| CliError::Config(format!("{}: {error}", file.display())))?;
            snippets.push(json!({ "id": file.display().to_string(), "code": code }));
        }
        let body = json!({ "snippets": snippets, "timeout": args.timeout, "wait": 300 });
        let mut request = client.post(format!("{server}/v1/checks")).json(&body);
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| CliError::Request(leanfarm_worker::tls::describe(&error)))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|error| CliError::Request(error.to_string()))?;
        if !status.is_success() {
            return Err(CliError::Request(format!(
                "{status}: {}",
                value["message"].as_str().unwrap_or("no message")
            )));
        }
        let results = value["results"].as_array().cloned().unwrap_or_default();
        for (file, result) in chunk.iter().zip(results) {
            rows.push((file.clone(), result));
        }
        if progress {
            eprint!("\rchecked {}/{} files", rows.len(), files.len());
        }
    }
    if progress {
        eprintln!();
    }
    if let Some((farm, data_dir)) = embedded {
        farm.stop().await;
        let _ = std::fs::remove_dir_all(data_dir);
    }
    let mut not_valid = 0;
    for (file, result) in &rows {
        let status =
            result["verdict"]["status"]
                .as_str()
                .unwrap_or(match result["state"].as_str() {
                    Some("dead") => "server_error",
                    _ => "pending",
                });
        if status != "valid" {
            not_valid += 1;
        }
        let detail = first_problem(result);
        if args.json {
            println!(
                "{}",
                json!({ "file": file.display().to_string(), "status": status, "detail": detail, "check": result })
            );
        } else {
            println!("{:<14} {}  {}", status, file.display(), detail);
        }
    }
    if not_valid > 0 {
        return Err(CliError::NotAllValid(not_valid, rows.len()));
    }
    Ok(())
}

/// The first error of a failure: Lean's first error message, else the reason.
fn first_problem(result: &Value) -> String {
    let verdict = &result["verdict"];
    if let Some(error) = verdict["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["severity"] == "error"))
    {
        return format!(
            "line {}: {}",
            error["line"],
            error["data"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    if let Some(message) = verdict["reason"]["message"].as_str() {
        return message.to_string();
    }
    result["error"].as_str().unwrap_or("").to_string()
}

fn tempfile_dir() -> Result<PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!("leanfarm-check-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)
        .map_err(|error| CliError::Config(format!("cannot create {}: {error}", dir.display())))?;
    Ok(dir)
}
