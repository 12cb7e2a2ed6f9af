//! `leanfarm results BATCH`: export a batch's results from a farm as JSONL
//! or CSV, to standard output or a file, as the farm streams them.
//!
//! It only reads (`GET /v1/batches/{id}/results`); it never submits or
//! changes anything, and writes nothing but the export to standard output.

use crate::CliError;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ResultsFormat {
    /// One check per line, as `GET /v1/checks/{id}` shows it
    Jsonl,
    /// One row per check, with a header row
    Csv,
}

impl ResultsFormat {
    fn query_value(self) -> &'static str {
        match self {
            ResultsFormat::Jsonl => "jsonl",
            ResultsFormat::Csv => "csv",
        }
    }
}

#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// The batch id (`batch_id` of a submission)
    pub batch: String,
    /// Export format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ResultsFormat,
    /// Only checks whose verdict has this status (valid, sorry, lean_error, ...)
    #[arg(long)]
    pub status: Option<String>,
    /// Write to this file instead of standard output
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// URL of the farm
    #[arg(
        long,
        env = "LEAN_FARM_SERVER",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server: String,
    /// A user token of the batch's tenant (`leanfarm tenant key`)
    #[arg(long, env = "LEAN_FARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// --server, besides the system's roots
    #[arg(long, env = "LEAN_FARM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

pub async fn run(args: ResultsArgs) -> Result<(), CliError> {
    let mut url = reqwest::Url::parse(args.server.trim_end_matches('/'))
        .map_err(|error| CliError::Config(format!("--server {}: {error}", args.server)))?;
    url.path_segments_mut()
        .map_err(|()| CliError::Config(format!("--server {} cannot be a base URL", args.server)))?
        .extend(["v1", "batches", &args.batch, "results"]);
    url.query_pairs_mut()
        .append_pair("format", args.format.query_value());
    if let Some(status) = &args.status {
        url.query_pairs_mut().append_pair("status", status);
    }
    let client = leanfarm_worker::tls::client_builder(args.ca_cert.as_deref())
        .map_err(|error| CliError::Config(format!("--ca-cert: {error}")))?
        .build()
        .map_err(|error| CliError::Config(format!("cannot build the http client: {error}")))?;
    let mut request = client.get(url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| CliError::Request(leanfarm_worker::tls::describe(&error)))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(CliError::Request(format!("{status}: {message}")));
    }
    let mut output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|error| CliError::Config(format!("{}: {error}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let write_failed =
        |error: std::io::Error| CliError::Request(format!("writing the export: {error}"));
    // A body cut short (the farm failed mid-export) is an error, never a
    // shorter export.
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| CliError::Request(format!("the export was cut short: {error}")))?
    {
        output.write_all(&chunk).map_err(write_failed)?;
    }
    output.flush().map_err(write_failed)
}
