//! What `leanfarm check` shows: one row per file on standard output (a
//! table, or JSON lines), in the order of the files; live progress on
//! standard error when it is a terminal; and a plain summary on standard
//! error at the end. Nothing else is ever written to standard output.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per file: status, path, first problem
    Table,
    /// One JSON object per file: file, status, detail, and the check (or the file's error)
    Jsonl,
}

/// What became of one file.
#[derive(Debug)]
pub enum Outcome {
    /// The farm's check, as `GET /v1/checks/{id}` shows it.
    Check(Value),
    /// The file never became a check: read locally, or refused by the farm.
    FileError { code: String, message: String },
}

impl Outcome {
    /// The status a row shows: the verdict's, `server_error` for a check
    /// the farm gave up on, `file_error` for a file that was not checked.
    pub fn status(&self) -> String {
        match self {
            Outcome::FileError { .. } => "file_error".to_string(),
            Outcome::Check(check) => check["verdict"]["status"]
                .as_str()
                .unwrap_or(match check["state"].as_str() {
                    Some("dead") => "server_error",
                    _ => "pending",
                })
                .to_string(),
        }
    }

    /// The first problem: Lean's first error, else the verdict's reason,
    /// else the farm's error, else the file's.
    fn detail(&self) -> String {
        let check = match self {
            Outcome::FileError { code, message } => return format!("{code}: {message}"),
            Outcome::Check(check) => check,
        };
        let verdict = &check["verdict"];
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
        check["error"].as_str().unwrap_or("").to_string()
    }
}

/// Prints rows in file order as they become known, and counts them.
pub struct Report {
    format: OutputFormat,
    /// Rows known but not yet printed, by file index.
    waiting: BTreeMap<usize, (PathBuf, Outcome)>,
    next_to_print: usize,
    pub by_status: BTreeMap<String, usize>,
    pub printed: usize,
}

impl Report {
    pub fn new(format: OutputFormat) -> Report {
        Report {
            format,
            waiting: BTreeMap::new(),
            next_to_print: 0,
            by_status: BTreeMap::new(),
            printed: 0,
        }
    }

    /// Record file `index`'s outcome and print every row now in order.
    pub fn record(&mut self, index: usize, file: PathBuf, outcome: Outcome) -> std::io::Result<()> {
        *self.by_status.entry(outcome.status()).or_default() += 1;
        self.waiting.insert(index, (file, outcome));
        let mut stdout = std::io::stdout().lock();
        while let Some((file, outcome)) = self.waiting.remove(&self.next_to_print) {
            let line = row(self.format, &file, &outcome);
            writeln!(stdout, "{line}")?;
            self.next_to_print += 1;
            self.printed += 1;
        }
        stdout.flush()
    }

    pub fn recorded(&self) -> usize {
        self.by_status.values().sum()
    }

    pub fn valid(&self) -> usize {
        self.by_status.get("valid").copied().unwrap_or(0)
    }
}

fn row(format: OutputFormat, file: &std::path::Path, outcome: &Outcome) -> String {
    let status = outcome.status();
    let detail = outcome.detail();
    let file = file.display().to_string();
    match (format, outcome) {
        (OutputFormat::Table, _) => format!("{status:<14} {file}  {detail}"),
        (OutputFormat::Jsonl, Outcome::Check(check)) => {
            json!({"file": file, "status": status, "detail": detail, "check": check}).to_string()
        }
        (OutputFormat::Jsonl, Outcome::FileError { code, message }) => json!({
            "file": file, "status": status, "detail": detail,
            "error": {"code": code, "message": message}
        })
        .to_string(),
    }
}

/// Counts of a run in progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub total: usize,
    pub done: usize,
    pub valid: usize,
}

impl Tally {
    pub fn failed(&self) -> usize {
        self.done - self.valid
    }
}

/// The live progress line, redrawn on a terminal at most a few times a second.
pub struct Progress {
    started: Instant,
    last_drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            started: Instant::now(),
            last_drawn: None,
            enabled,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn draw(&mut self, tally: Tally) {
        if !self.enabled
            || self
                .last_drawn
                .is_some_and(|at| at.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            tally.done as f64 / seconds
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            format_duration((tally.total - tally.done) as f64 / rate)
        } else {
            "?".to_string()
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[Kchecked {}/{}: {} valid, {} failed, {rate:.1}/s, ETA {eta}",
            tally.done,
            tally.total,
            tally.valid,
            tally.failed(),
        );
        let _ = stderr.flush();
    }

    /// End the progress line, so that what follows starts on a clean line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// The run's summary, one line: how many files, each status, time and rate.
pub fn summary(report: &Report, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let files = report.recorded();
    let statuses: Vec<String> = report
        .by_status
        .iter()
        .filter(|(status, _)| *status != "valid")
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    let rate = if seconds > 0.0 {
        files as f64 / seconds
    } else {
        0.0
    };
    let not_valid = files - report.valid();
    let mut line = format!(
        "leanfarm: {files} files checked in {seconds:.1} s ({rate:.1}/s): {} valid, {not_valid} not valid",
        report.valid(),
    );
    if not_valid > 0 {
        line.push_str(&format!(" ({})", statuses.join(", ")));
    }
    line
}

fn format_duration(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}
