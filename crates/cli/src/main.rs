//! `leanfarm`: run the farm, check files, and (hidden) act as the Lean
//! stand-in so that `--simulate` needs no second binary.

mod bench;
mod check;
mod config;
mod conformance;
mod gc;
mod index;
mod jobs;
mod prove;
mod results;
mod tenant;
mod verify;
mod worker;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leanfarm",
    version,
    about = "Check Lean 4 proofs at scale, in warm sandboxed Lean processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the farm: HTTP API, job store and in-process workers.
    Serve(Box<config::ServeArgs>),
    /// Check .lean files (or directories of them) and print their verdicts.
    Check(check::CheckArgs),
    /// Ask a farm to prove a theorem with a model, showing the search live.
    Prove(Box<prove::ProveArgs>),
    /// Export a batch's results from a farm as JSONL or CSV.
    Results(results::ResultsArgs),
    /// Check jobs leased from a farm over HTTP (a remote worker).
    Worker(Box<worker::WorkerArgs>),
    /// Run the conformance kit of hostile and honest snippets through an embedded driver.
    Conformance(Box<conformance::ConformanceArgs>),
    /// Manage tenants, their limits and their tokens.
    Tenant(tenant::TenantArgs),
    /// List jobs by state and put dead jobs back in the queue.
    Jobs(jobs::JobsArgs),
    /// Check a signed verdict (an attestation) offline against trusted public keys.
    Verify(verify::VerifyArgs),
    /// Make and publish the Ed25519 keys that workers sign verdicts with.
    Keys(verify::KeysArgs),
    /// Delete final jobs past their retention, and their artifacts (once, with `serve`'s settings; `serve` also sweeps).
    Gc(Box<gc::GcArgs>),
    /// Build a declarations index for premise search (`serve --search-index`).
    Index(index::IndexArgs),
    /// Run a problem set through /v1/prove and write a report (pass@k, solve rates, cost).
    Bench(Box<bench::BenchArgs>),
    /// Apply the store's pending migrations and exit (serve also applies them).
    Migrate {
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(long, env = "LEAN_FARM_STORE")]
        store: String,
    },
    /// Act as lean-sim, the stand-in for Lean (used by --simulate).
    #[command(hide = true, name = "lean-sim", disable_help_flag = true)]
    LeanSim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Every way the command fails, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Setting(#[from] config::SettingError),
    #[error("failed to start the farm: {0}")]
    Startup(String),
    #[error("request to the farm failed: {0}")]
    Request(String),
    #[error("{0} of {1} snippets are not valid")]
    NotAllValid(usize, usize),
    #[error("not proved ({0}): {1}")]
    NotProved(String, String),
    #[error("{0} of {1} conformance cases failed")]
    ConformanceFailed(usize, usize),
    #[error("the attestation is not valid: {0}")]
    AttestationInvalid(String),
    #[error("regression against the baseline: {0}")]
    Regression(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::NotAllValid(..)
            | CliError::NotProved(..)
            | CliError::ConformanceFailed(..)
            | CliError::AttestationInvalid(_)
            | CliError::Regression(_) => 1,
            CliError::Config(_) | CliError::Setting(_) => 2,
            CliError::Startup(_) => 3,
            CliError::Request(_) => 4,
        }
    }
}

async fn migrate(url: &str) -> Result<(), CliError> {
    let store = leanfarm_store::Store::open(url)
        .await
        .map_err(|error| CliError::Startup(format!("store {url}: {error}")))?;
    println!("leanfarm: the {} store is up to date", store.backend_name());
    Ok(())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    // The settings given by flag or variable, which a config file must not override.
    let explicit = matches
        .subcommand_matches("serve")
        .or_else(|| matches.subcommand_matches("gc"))
        .map(config::explicit_settings)
        .unwrap_or_default();
    // `check` starts its own farm with `serve`'s settings.
    let check_farm_settings = matches
        .subcommand_matches("check")
        .map(check::FarmSettingsGiven::from_matches);
    if let Command::LeanSim { args } = cli.command {
        return ExitCode::from(lean_sim::main_with_args(args).clamp(0, 255) as u8);
    }
    // `check` prints a table; its embedded farm logs only problems by default.
    let default_log = match cli.command {
        Command::Check(_)
        | Command::Conformance(_)
        | Command::Tenant(_)
        | Command::Jobs(_)
        | Command::Verify(_)
        | Command::Keys(_)
        | Command::Index(_)
        | Command::Bench(_)
        | Command::Results(_)
        | Command::Gc(_)
        | Command::Prove(_)
        | Command::Migrate { .. } => "warn",
        _ => "info",
    };
    let (telemetry, service_name) = match &cli.command {
        Command::Serve(args) => (Some(&args.telemetry), "leanfarm-api"),
        Command::Worker(args) => (Some(&args.telemetry), "leanfarm-worker"),
        _ => (None, "leanfarm"),
    };
    let telemetry = telemetry
        .map(|args| args.validate().map_err(CliError::from))
        .transpose()
        .and_then(|_| match &cli.command {
            Command::Check(args) if args.log_file.is_some() => {
                let path = args.log_file.as_deref().expect("checked above");
                config::init_logging_to_file(default_log, path)
                    .map(|()| config::Telemetry::default())
            }
            _ => config::init_logging(default_log, telemetry, service_name),
        });
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("leanfarm: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("leanfarm: failed to start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => config::serve(*args, &explicit).await,
            Command::Check(args) => {
                let given = check_farm_settings.expect("parsed check");
                check::run(args, given).await
            }
            Command::Results(args) => results::run(args).await,
            Command::Prove(args) => prove::run(*args).await,
            Command::Conformance(args) => conformance::run(*args).await,
            Command::Migrate { store } => migrate(&store).await,
            Command::Worker(args) => worker::run(*args).await,
            Command::Tenant(args) => tenant::run(args).await,
            Command::Jobs(args) => jobs::run(args).await,
            Command::Verify(args) => verify::verify(args).await,
            Command::Keys(args) => verify::keys(args),
            Command::Gc(args) => gc::run(*args, &explicit).await,
            Command::Index(args) => index::run(args),
            Command::Bench(args) => bench::run(*args).await,
            Command::LeanSim { .. } => unreachable!("handled above"),
        }
    });
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("leanfarm: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
