//! `leanfarm check`: submit .lean files to a farm (a server, or one started
//! for the run with `serve`'s settings), follow the batches until every
//! verdict is in, print one row per file, and exit non-zero unless every
//! proof is valid.
//!
//! Files are read and submitted a batch at a time, with at most
//! `--max-open` checks open on the farm, so a run of any size holds little
//! in memory. A file that cannot be read, or that the farm refuses alone,
//! is that file's row (`file_error`); the run goes on.

mod farm;
mod files;
mod report;

use crate::config::{start_farm, with_file, ServeArgs};
use crate::CliError;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use farm::{ApiFailure, Backoff, FarmClient};
use files::{collect_files, read_snippet, Found};
use report::{Outcome, OutputFormat, Progress, Report, Tally};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most a request's snippets may weigh as JSON: half the API's default
/// body limit (a farm with a lower limit makes batches split further).
const MAX_REQUEST_SNIPPET_BYTES: usize = 8 << 20;

/// The most a snippet id may weigh as JSON (the API's limit is 256 bytes).
const MAX_CUSTOM_ID_BYTES: usize = 250;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// .lean files, or directories searched for them
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// URL of a running farm; without it, a farm is started for this run with the settings of `serve` (--simulate, or --repl and --lean-project, ...)
    #[arg(long, env = "LEAN_FARM_SERVER")]
    pub server: Option<String>,
    /// A user token for a farm that requires one (`leanfarm tenant key`)
    #[arg(long, env = "LEAN_FARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// --server, besides the system's roots
    #[arg(long, env = "LEAN_FARM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds allowed for each check
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// The statement every file must prove, e.g. "theorem t (n : Nat) : n + 0 = n" (its name is read from it); @FILE reads it from FILE
    #[arg(long)]
    pub pin: Option<String>,
    /// Allow `native_decide` (and the axioms it adds)
    #[arg(long)]
    pub allow_native_decide: bool,
    /// The axioms a proof may depend on, comma-separated; "" allows none [default: propext,Classical.choice,Quot.sound]
    #[arg(long, value_delimiter = ',')]
    pub axioms: Option<Vec<String>>,
    /// How rows are printed on standard output
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// The same as --output jsonl
    #[arg(long, hide = true)]
    pub json: bool,
    /// Files per request (a farm that takes fewer makes the batches split)
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Checks open on the farm at once; the next files are submitted as these finish
    #[arg(long, default_value_t = 4096)]
    pub max_open: usize,
    /// Largest file submitted, in bytes; a larger file is reported as that file's error
    #[arg(long, default_value_t = 1 << 20)]
    pub max_file_bytes: u64,
    /// Write the logs (of the run and of its farm) to this file instead of standard error
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// The farm started without --server: every setting of `leanfarm serve`
    #[command(flatten)]
    pub farm: Box<ServeArgs>,
}

/// The settings of the run's own farm that were given explicitly: by flag
/// or variable (the config file does not override them), and by flag (a
/// mistake with --server).
pub struct FarmSettingsGiven {
    pub explicit: Vec<String>,
    pub on_command_line: Vec<String>,
}

impl FarmSettingsGiven {
    pub fn from_matches(matches: &ArgMatches) -> FarmSettingsGiven {
        let serve_ids: Vec<String> = <ServeArgs as Args>::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect();
        let given = |sources: &[ValueSource]| -> Vec<String> {
            serve_ids
                .iter()
                .filter(|id| {
                    matches
                        .value_source(id)
                        .is_some_and(|source| sources.contains(&source))
                })
                .cloned()
                .collect()
        };
        FarmSettingsGiven {
            explicit: given(&[ValueSource::CommandLine, ValueSource::EnvVariable]),
            on_command_line: given(&[ValueSource::CommandLine]),
        }
    }
}

/// What the run sends with every batch.
struct Submission {
    timeout: f64,
    policy: Map<String, Value>,
}

impl Submission {
    fn from_args(args: &CheckArgs) -> Result<Submission, CliError> {
        if !(args.timeout.is_finite() && args.timeout > 0.0) {
            return Err(CliError::Config(format!(
                "--timeout must be more than 0 seconds, not {}",
                args.timeout
            )));
        }
        let mut policy = Map::new();
        if let Some(axioms) = &args.axioms {
            let axioms: Vec<&str> = axioms
                .iter()
                .map(|axiom| axiom.trim())
                .filter(|axiom| !axiom.is_empty())
                .collect();
            policy.insert("allowed_axioms".into(), json!(axioms));
        }
        if args.allow_native_decide {
            policy.insert("allow_native_decide".into(), json!(true));
        }
        if let Some(pin) = &args.pin {
            let statement = match pin.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|error| CliError::Config(format!("--pin {pin}: {error}")))?,
                None => pin.clone(),
            };
            let name = pinned_name(&statement).ok_or_else(|| {
                CliError::Config(format!(
                    "--pin must be a statement `theorem NAME ... : TYPE`, not {:?}",
                    statement.chars().take(64).collect::<String>()
                ))
            })?;
            policy.insert(
                "pinned".into(),
                json!({"name": name, "statement": statement.trim()}),
            );
        }
        Ok(Submission {
            timeout: args.timeout,
            policy,
        })
    }

    fn body(&self, entries: &[Entry]) -> Value {
        let snippets: Vec<Value> = entries
            .iter()
            .map(|entry| json!({"id": custom_id(&entry.file), "code": entry.code}))
            .collect();
        let mut body = json!({"snippets": snippets, "timeout": self.timeout});
        if !self.policy.is_empty() {
            body["policy"] = Value::Object(self.policy.clone());
        }
        body
    }
}

/// The name a statement declares: what follows `theorem` or `lemma`.
fn pinned_name(statement: &str) -> Option<String> {
    let trimmed = statement.trim_start();
    let rest = trimmed
        .strip_prefix("theorem")
        .or_else(|| trimmed.strip_prefix("lemma"))
        .filter(|rest| rest.starts_with(char::is_whitespace))?
        .trim_start();
    let name: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '(' | '{' | '[' | ':' | '⦃'))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The snippet id the farm stores for a file: its path, or the path's end
/// when the whole path is longer than an id may be.
fn custom_id(file: &Path) -> String {
    let path = file.display().to_string();
    let json_bytes = |text: &str| serde_json::to_string(text).map_or(usize::MAX, |s| s.len());
    if json_bytes(&path) <= MAX_CUSTOM_ID_BYTES {
        return path;
    }
    let mut tail = String::new();
    for c in path.chars().rev() {
        let mut candidate = String::from(c);
        candidate.push_str(&tail);
        if json_bytes(&candidate) + "…".len() > MAX_CUSTOM_ID_BYTES {
            break;
        }
        tail = candidate;
    }
    format!("…{tail}")
}

/// A file read and ready to submit.
struct Entry {
    index: usize,
    file: PathBuf,
    code: String,
}

/// Files submitted (or to submit) together, under one idempotency key.
struct Chunk {
    entries: Vec<Entry>,
    idempotency_key: String,
}

impl Chunk {
    fn new(entries: Vec<Entry>) -> Chunk {
        Chunk {
            entries,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// A batch on the farm that is not yet all final.
struct OpenBatch {
    batch_id: String,
    /// Job id → file index and path.
    jobs: HashMap<String, (usize, PathBuf)>,
    finished: usize,
    valid: usize,
}

/// The run: files to read, chunks to submit, batches to follow, rows to print.
struct Run<'a> {
    args: &'a CheckArgs,
    client: FarmClient,
    submission: Submission,
    files: std::iter::Enumerate<std::vec::IntoIter<Found>>,
    pending: VecDeque<Chunk>,
    open: VecDeque<OpenBatch>,
    report: Report,
    progress: Progress,
    total: usize,
    /// The long poll's wait; lowered if the farm allows less.
    poll_wait: Duration,
}

impl Run<'_> {
    fn tally(&self) -> Tally {
        Tally {
            total: self.total,
            done: self.report.recorded() + self.open.iter().map(|b| b.finished).sum::<usize>(),
            valid: self.report.valid() + self.open.iter().map(|b| b.valid).sum::<usize>(),
        }
    }

    fn record(&mut self, index: usize, file: PathBuf, outcome: Outcome) -> Result<(), CliError> {
        self.report
            .record(index, file, outcome)
            .map_err(|error| CliError::Request(format!("writing the results: {error}")))
    }

    fn open_checks(&self) -> usize {
        self.open.iter().map(|batch| batch.jobs.len()).sum()
    }

    /// The next files to submit, read now; a file that cannot be read is
    /// recorded as its error. None when every file has been read.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, CliError> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        while entries.len() < self.args.batch_size && bytes < MAX_REQUEST_SNIPPET_BYTES {
            let Some((index, found)) = self.files.next() else {
                break;
            };
            let read = match found.problem {
                Some(problem) => Err(problem),
                None => read_snippet(&found.path, self.args.max_file_bytes),
            };
            match read {
                Ok(code) => {
                    bytes += serde_json::to_string(&code).map_or(code.len(), |s| s.len());
                    entries.push(Entry {
                        index,
                        file: found.path,
                        code,
                    });
                }
                Err(problem) => {
                    let outcome = Outcome::FileError {
                        code: problem.code().to_string(),
                        message: problem.to_string(),
                    };
                    self.record(index, found.path, outcome)?;
                }
            }
        }
        Ok((!entries.is_empty()).then(|| Chunk::new(entries)))
    }

    /// Submit one chunk: it becomes an open batch, or splits (the farm
    /// took it as too large, or refused one of its files), or its one
    /// file is refused as that file's error. Failures that pass are
    /// retried with the same idempotency key.
    async fn submit(&mut self, chunk: Chunk) -> Result<(), CliError> {
        let body = self.submission.body(&chunk.entries);
        let mut backoff = Backoff::new();
        let failure = loop {
            match self.client.submit(&body, &chunk.idempotency_key).await {
                Ok((batch_id, job_ids)) => {
                    if job_ids.len() != chunk.entries.len() || batch_id.is_empty() {
                        return Err(CliError::Request(format!(
                            "the farm answered {} checks for {} snippets",
                            job_ids.len(),
                            chunk.entries.len()
                        )));
                    }
                    let jobs = job_ids
                        .into_iter()
                        .zip(chunk.entries)
                        .map(|(job_id, entry)| (job_id, (entry.index, entry.file)))
                        .collect();
                    self.open.push_back(OpenBatch {
                        batch_id,
                        jobs,
                        finished: 0,
                        valid: 0,
                    });
                    return Ok(());
                }
                Err(failure) if failure.passes() => {
                    let pause = backoff.pause(failure)?;
                    self.progress.draw(self.tally());
                    tokio::time::sleep(pause).await;
                }
                Err(failure) => break failure,
            }
        };
        let refuses_a_snippet = refuses_a_snippet(&failure);
        if chunk.entries.len() > 1 && (refuses_a_snippet || refuses_the_size(&failure)) {
            let mut entries = chunk.entries;
            let second = entries.split_off(entries.len() / 2);
            self.pending.push_front(Chunk::new(second));
            self.pending.push_front(Chunk::new(entries));
            return Ok(());
        }
        if refuses_a_snippet {
            let entry = chunk.entries.into_iter().next().expect("one entry");
            let outcome = Outcome::FileError {
                code: failure.code,
                message: failure.message,
            };
            return self.record(entry.index, entry.file, outcome);
        }
        Err(failure.into())
    }

    /// Poll every open batch once (the oldest with a long poll), and
    /// report the batches that are all final.
    async fn poll(&mut self) -> Result<(), CliError> {
        let mut position = 0;
        while position < self.open.len() {
            let wait = if position == 0 {
                self.poll_wait
            } else {
                Duration::ZERO
            };
            let batch_id = self.open[position].batch_id.clone();
            let view = self.batch_view(&batch_id, wait).await?;
            let batch = &mut self.open[position];
            batch.finished = view["finished"].as_u64().unwrap_or(0) as usize;
            batch.valid = view["statuses"]["valid"].as_u64().unwrap_or(0) as usize;
            if view["all_final"] == true {
                let batch = self.open.remove(position).expect("a batch");
                self.report_batch(batch).await?;
            } else {
                if position == 0 && wait.is_zero() {
                    // The farm allows no long poll: do not spin.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                position += 1;
            }
            self.progress.draw(self.tally());
        }
        Ok(())
    }

    /// The batch's progress, through outages; a wait longer than the farm
    /// allows is shortened.
    async fn batch_view(&mut self, batch_id: &str, mut wait: Duration) -> Result<Value, CliError> {
        let mut backoff = Backoff::new();
        loop {
            match self.client.batch(batch_id, wait).await {
                Ok(view) => return Ok(view),
                Err(failure) if failure.code == "invalid_wait" && !wait.is_zero() => {
                    wait = if wait > Duration::from_secs(1) {
                        wait / 2
                    } else {
                        Duration::ZERO
                    };
                    self.poll_wait = self.poll_wait.min(wait);
                }
                Err(failure) => {
                    let pause = backoff.pause(failure)?;
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Export a finished batch and record each of its files' rows.
    async fn report_batch(&mut self, mut batch: OpenBatch) -> Result<(), CliError> {
        let mut backoff = Backoff::new();
        let checks = loop {
            match self.client.export(&batch.batch_id).await {
                Ok(checks) => break checks,
                Err(failure) => {
                    let pause = backoff.pause(failure)?;
                    tokio::time::sleep(pause).await;
                }
            }
        };
        for check in checks {
            let Some(job_id) = check["id"].as_str() else {
                continue;
            };
            if let Some((index, file)) = batch.jobs.remove(job_id) {
                self.record(index, file, Outcome::Check(check))?;
            }
        }
        for (_, (index, file)) in batch.jobs.drain() {
            let outcome = Outcome::FileError {
                code: "missing_from_export".to_string(),
                message: format!(
                    "batch {}'s export does not include this file's check",
                    batch.batch_id
                ),
            };
            self.record(index, file, outcome)?;
        }
        Ok(())
    }

    async fn run(&mut self) -> Result<(), CliError> {
        loop {
            while self.open_checks() < self.args.max_open {
                let chunk = match self.pending.pop_front() {
                    Some(chunk) => chunk,
                    None => match self.next_chunk()? {
                        Some(chunk) => chunk,
                        None => break,
                    },
                };
                self.submit(chunk).await?;
                self.progress.draw(self.tally());
            }
            if self.open.is_empty() && self.pending.is_empty() {
                return Ok(());
            }
            self.poll().await?;
        }
    }
}

/// A refusal that names one snippet (or a body that one snippet made too
/// large): splitting the batch finds the file it is about.
fn refuses_a_snippet(failure: &ApiFailure) -> bool {
    match failure.code.as_str() {
        "snippet_too_large" | "nul_byte" | "body_too_large" => true,
        "field_too_large" => failure.message.contains("snippets"),
        _ => false,
    }
}

/// A refusal of the batch's size: smaller batches may pass.
fn refuses_the_size(failure: &ApiFailure) -> bool {
    matches!(
        failure.code.as_str(),
        "batch_too_large" | "batch_exceeds_queue_limit"
    )
}

pub async fn run(args: CheckArgs, given: FarmSettingsGiven) -> Result<(), CliError> {
    if args.batch_size == 0 || args.max_open == 0 {
        return Err(CliError::Config(
            "--batch-size and --max-open must be at least 1".to_string(),
        ));
    }
    let submission = Submission::from_args(&args)?;
    let found = collect_files(&args.paths)?;
    if args.server.is_some() && !given.on_command_line.is_empty() {
        let flags: Vec<String> = given
            .on_command_line
            .iter()
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect();
        return Err(CliError::Config(format!(
            "{} set up the farm `check` starts without --server; with --server they have no effect",
            flags.join(", ")
        )));
    }
    let mut embedded = None;
    let server = match &args.server {
        Some(server) => server.clone(),
        None => {
            let (farm, data_dir) = start_embedded(&args, &given.explicit).await?;
            let scheme = if farm.https { "https" } else { "http" };
            let url = format!("{scheme}://{}", farm.local_addr);
            embedded = Some((farm, data_dir));
            url
        }
    };
    let show_progress = std::io::stderr().is_terminal();
    let format = if args.json {
        OutputFormat::Jsonl
    } else {
        args.output
    };
    let mut run = Run {
        args: &args,
        client: FarmClient::new(&server, args.token.clone(), args.ca_cert.as_deref())?,
        submission,
        total: found.len(),
        files: found.into_iter().enumerate(),
        pending: VecDeque::new(),
        open: VecDeque::new(),
        report: Report::new(format),
        progress: Progress::new(show_progress),
        poll_wait: if show_progress {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(30)
        },
    };
    let outcome = run.run().await;
    run.progress.finish();
    if let Some((farm, data_dir)) = embedded {
        farm.stop().await;
        if let Some(data_dir) = data_dir {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
    outcome?;
    eprintln!("{}", report::summary(&run.report, run.progress.elapsed()));
    let not_valid = run.report.recorded() - run.report.valid();
    if not_valid > 0 {
        return Err(CliError::NotAllValid(not_valid, run.report.recorded()));
    }
    Ok(())
}

/// Start the run's own farm: `serve`'s settings (flags, variables, then
/// `--config`), on a free local port, in a temporary data directory
/// (removed after the run) unless `--addr` or `--data-dir` say otherwise.
async fn start_embedded(
    args: &CheckArgs,
    explicit: &[String],
) -> Result<(leanfarm_server::Farm, Option<PathBuf>), CliError> {
    let mut settings = with_file(*args.farm.clone(), explicit)?;
    if !explicit.iter().any(|id| id == "addr") {
        settings.addr = ([127, 0, 0, 1], 0).into();
    }
    let temporary = if explicit.iter().any(|id| id == "data_dir") {
        None
    } else {
        let dir = std::env::temp_dir().join(format!("leanfarm-check-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).map_err(|error| {
            CliError::Config(format!("cannot create {}: {error}", dir.display()))
        })?;
        settings.data_dir = dir.clone();
        Some(dir)
    };
    match start_farm(settings).await {
        Ok(farm) => Ok((farm, temporary)),
        Err(error) => {
            if let Some(dir) = temporary {
                let _ = std::fs::remove_dir_all(dir);
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_statement_names_its_theorem() {
        assert_eq!(
            pinned_name("theorem t (n : Nat) : n + 0 = n").as_deref(),
            Some("t")
        );
        assert_eq!(
            pinned_name("  lemma Foo.bar: True := by sorry").as_deref(),
            Some("Foo.bar")
        );
        assert_eq!(pinned_name("theorem{x} : True"), None);
        assert_eq!(pinned_name("def t : Nat := 1"), None);
    }

    #[test]
    fn a_long_path_keeps_its_end_within_the_id_limit() {
        let short = Path::new("proofs/a.lean");
        assert_eq!(custom_id(short), "proofs/a.lean");
        let long = PathBuf::from(format!("{}/é\"/end.lean", "d".repeat(400)));
        let id = custom_id(&long);
        assert!(id.starts_with('…') && id.ends_with("é\"/end.lean"), "{id}");
        assert!(serde_json::to_string(&id).unwrap().len() <= 256);
    }
}
