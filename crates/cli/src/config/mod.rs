//! Configuration of `leanfarm serve` and `leanfarm worker`, from one path:
//! flags, then `LEAN_FARM_*` environment variables, then an optional TOML
//! file (`--config`, serve only), then defaults. Each default is written
//! once, in the `defaults` module of the struct that holds the setting, and
//! serves clap's help and the file alike; `file` joins the file to the
//! rest without naming any setting.
//!
//! By concern: `server` (listening, auth, request and queue limits),
//! `checker` (toolchain, slots, leases; builds the driver), `sandbox` (the
//! sandbox's backend and limits), `store` (job and artifact stores),
//! `queue` (attempts and outages), `retention` (how long final jobs are
//! kept), `telemetry` (logs, and OTLP traces). Each
//! struct has a `validate()` whose error names the setting. This module
//! builds a running `Farm` from settings; it must never hold a default
//! itself.

mod checker;
mod file;
mod prove;
mod queue;
mod retention;
mod sandbox;
mod server;
mod store;
mod telemetry;

pub use checker::{prestart, CheckerArgs};
pub use file::{explicit_settings, with_file};
pub use server::ServeArgs;
pub use telemetry::{Telemetry, TelemetryArgs};

use crate::CliError;
use leanfarm_server::{AppState, Farm};
use leanfarm_store::{ArtifactStore, Store};
use std::path::{Path, PathBuf};

/// A setting whose value cannot work, by its name in the config file (its
/// flag and variable follow from the name).
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}` (--{flag}, {env}): {problem}", flag = flag_of(.setting), env = variable_of(.setting))]
pub struct SettingError {
    pub setting: &'static str,
    pub problem: String,
}

impl SettingError {
    pub fn new(setting: &'static str, problem: String) -> SettingError {
        SettingError { setting, problem }
    }
}

/// The flag of a setting: its name in kebab case.
fn flag_of(setting: &str) -> String {
    setting.replace('_', "-")
}

/// The environment variable of a setting.
fn variable_of(setting: &str) -> String {
    format!("LEAN_FARM_{}", setting.to_uppercase())
}

/// JSON logs on stderr, filtered by LEAN_FARM_LOG, else at `default`;
/// traces exported when `telemetry` names an OTLP endpoint.
pub fn init_logging(
    default: &str,
    telemetry: Option<&TelemetryArgs>,
    default_service_name: &str,
) -> Result<Telemetry, CliError> {
    telemetry::init(default, telemetry, default_service_name)
}

/// JSON logs appended to `path`, filtered as `init_logging`'s.
pub fn init_logging_to_file(default: &str, path: &Path) -> Result<(), CliError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| CliError::Config(format!("--log-file {}: {error}", path.display())))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAN_FARM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// The data directory, created if missing, as an absolute path.
pub fn data_dir(data_dir: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(data_dir).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", data_dir.display()))
    })?;
    std::fs::canonicalize(data_dir).map_err(|error| CliError::Config(error.to_string()))
}

/// Build and start a farm from settings.
pub async fn start_farm(args: ServeArgs) -> Result<Farm, CliError> {
    start_farm_reporting(args).await.map(|(farm, _)| farm)
}

/// A farm started for one command's run (`prove`, `bench`): on a free
/// local port, its data in a new temporary directory that `stop` removes.
pub struct TemporaryFarm {
    farm: Farm,
    data_dir: PathBuf,
}

impl TemporaryFarm {
    /// Start `settings` on 127.0.0.1 at a free port, with its data under a
    /// temporary directory named after `purpose` (removed if the farm does
    /// not start).
    pub async fn start(mut settings: ServeArgs, purpose: &str) -> Result<TemporaryFarm, CliError> {
        let data_dir =
            std::env::temp_dir().join(format!("leanfarm-{purpose}-{}", uuid::Uuid::now_v7()));
        settings.addr = ([127, 0, 0, 1], 0).into();
        settings.data_dir = data_dir.clone();
        match start_farm(settings).await {
            Ok(farm) => Ok(TemporaryFarm { farm, data_dir }),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&data_dir);
                Err(error)
            }
        }
    }

    /// The farm's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.farm.local_addr)
    }

    /// Stop the farm and remove its data.
    pub async fn stop(self) {
        self.farm.stop().await;
        let _ = std::fs::remove_dir_all(self.data_dir);
    }
}

/// `start_farm`, and where the farm keeps its data, its store's kind and
/// the sandbox in force, in the words of the start-up line.
pub async fn start_farm_reporting(args: ServeArgs) -> Result<(Farm, String), CliError> {
    args.validate()?;
    let tls = args.server_tls()?;
    let data_dir = data_dir(&args.data_dir)?;
    let signing_keys = crate::verify::farm_signing_keys(&data_dir, args.signing_keys.as_deref())?;
    let slots = args.checker.slots();
    let (driver, sandbox) = match slots {
        0 => (
            None,
            "none here (--slots 0: this replica runs no checks)".to_string(),
        ),
        slots => {
            let (driver, sandbox) = args.checker.build_driver_in_force(&data_dir, slots)?;
            (Some(driver), sandbox)
        }
    };
    if let Some(driver) = &driver {
        prestart(driver).await?;
    }
    let store_url = args.stores.store_url(&data_dir);
    let store = Store::open(&store_url)
        .await
        .map_err(|error| CliError::Startup(format!("store {store_url}: {error}")))?
        .with_queue_policy(args.queue.policy());
    let artifacts_url = args.stores.artifacts_url(&data_dir);
    let artifacts = ArtifactStore::open_with(&artifacts_url, &args.stores.artifact_settings())
        .map_err(|error| CliError::Startup(format!("artifacts {artifacts_url}: {error}")))?;
    let state = AppState::new(
        store,
        artifacts,
        driver,
        args.limits.limits(),
        args.require_auth,
    );
    crate::verify::trust_worker_keys(&state, args.trusted_worker_keys.as_deref())?;
    let worker_id = format!("embedded-{}", uuid::Uuid::now_v7());
    let _ = state.farm_signer.set(leanfarm_worker::VerdictSigner {
        keys: signing_keys,
        identity: leanfarm_attest::WorkerIdentity {
            worker_id: worker_id.clone(),
            toolchain_sha256: leanfarm_attest::UNHASHED.to_string(),
            project_sha256: leanfarm_attest::UNHASHED.to_string(),
        },
    });
    if args.retention.sweeps() {
        let _ = state.retention.set(args.retention.policy());
    }
    crate::index::open_search_index(&state, args.search_index.as_deref())?;
    let gateway = leanfarm_prove::Gateway::new(&args.prove.prove.routes)
        .map_err(|error| CliError::Config(error.to_string()))?;
    let mut prove = leanfarm_server::ProveService::new(gateway, args.prove.settings());
    if let Some(retriever) = state.search_index.get() {
        prove = prove.with_premises(std::sync::Arc::new(leanfarm_server::RetrieverPremises(
            std::sync::Arc::clone(retriever),
        )));
    }
    let _ = state.prove.set(std::sync::Arc::new(prove));
    let worker = args.checker.worker_config(worker_id);
    let addr = args.addr;
    let farm = Farm::start_with_tls(state, addr, args.metrics_addr, worker, tls)
        .await
        .map_err(|error| CliError::Startup(format!("cannot listen on {addr}: {error}")))?;
    let report = format!(
        "data in {}, store {}, artifacts {}, sandbox {sandbox}",
        data_dir.display(),
        store_kind(&store_url),
        artifacts_kind(&artifacts_url)
    );
    Ok((farm, report))
}

/// Where artifacts go, for the start-up line: a directory's absolute path,
/// or memory.
fn artifacts_kind(artifacts_url: &str) -> String {
    if artifacts_url == "memory://" {
        return "in memory (nothing is kept)".to_string();
    }
    let directory = artifacts_url
        .strip_prefix("file://")
        .unwrap_or(artifacts_url);
    std::fs::canonicalize(directory)
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| directory.to_string())
}

/// A store URL's kind, for the start-up line: a SQLite file's path, never
/// a PostgreSQL URL (it may hold a password).
fn store_kind(store_url: &str) -> String {
    if store_url == "sqlite::memory:" {
        return "sqlite in memory (nothing is kept)".to_string();
    }
    match store_url.strip_prefix("sqlite://") {
        Some(path) => format!("sqlite {path}"),
        None => "postgres".to_string(),
    }
}

/// `leanfarm serve`: `explicit` names the settings given by flag or
/// variable (`explicit_settings`), which the config file does not override.
pub async fn serve(args: ServeArgs, explicit: &[String]) -> Result<(), CliError> {
    let args = file::with_file(args, explicit)?;
    let (farm, report) = start_farm_reporting(args).await?;
    let scheme = if farm.https { "https" } else { "http" };
    eprintln!(
        "leanfarm: serving on {scheme}://{} ({report}; Ctrl-C or SIGTERM to stop)",
        farm.local_addr
    );
    if let Some(metrics_addr) = farm.metrics_addr {
        eprintln!("leanfarm: metrics on http://{metrics_addr}/metrics");
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining running checks");
    farm.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::{CommandFactory, FromArgMatches};

    /// `leanfarm serve ARGS`, parsed as main does: the settings and the ids
    /// given explicitly.
    fn parse_serve(args: &[&str]) -> (ServeArgs, Vec<String>) {
        let matches = Cli::command()
            .try_get_matches_from(["leanfarm", "serve"].iter().chain(args))
            .unwrap();
        let explicit = explicit_settings(matches.subcommand_matches("serve").unwrap());
        match Cli::from_arg_matches(&matches).unwrap().command {
            crate::Command::Serve(args) => (*args, explicit),
            _ => unreachable!("parsed serve"),
        }
    }

    #[test]
    fn clap_and_the_file_have_the_same_defaults() {
        // What clap fills in with no flags is what an empty file gives.
        let (parsed, explicit) = parse_serve(&[]);
        assert!(
            explicit.is_empty(),
            "{explicit:?} (is a LEAN_FARM_ variable set?)"
        );
        assert_eq!(parsed, ServeArgs::default());
        assert_eq!(parsed.limits.limits().max_queued_jobs, 100_000);
        assert_eq!(parsed.checker.sandbox.pids_limit, 256);
        assert_eq!(parsed.checker.sandbox.cpu_limit_cores, 1.0);
    }

    #[test]
    fn each_settings_flag_and_variable_follow_from_its_name() {
        // `SettingError` names the flag and variable from the setting's name.
        let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(flag_of(id).as_str()), "{id}");
            assert_eq!(
                arg.get_env().and_then(|env| env.to_str()),
                Some(variable_of(id).as_str()),
                "{id}"
            );
        }
    }

    #[test]
    fn the_queue_settings_become_the_stores_policy() {
        let (defaults, _) = parse_serve(&[]);
        let policy = defaults.queue.policy();
        assert_eq!(policy.max_attempts, Some(3));
        assert!(!policy.count_expiry_during_outage);
        assert_eq!(policy.outage_gap, std::time::Duration::from_secs(15));
        let (args, _) = parse_serve(&[
            "--max-attempts",
            "5",
            "--count-lease-expiry-in-outages",
            "--outage-gap-seconds",
            "40",
        ]);
        let policy = args.queue.policy();
        assert_eq!(policy.max_attempts, Some(5));
        assert!(policy.count_expiry_during_outage);
        assert_eq!(policy.outage_gap, std::time::Duration::from_secs(40));
    }

    #[test]
    fn the_file_fills_only_what_flags_did_not_give() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("farm.toml");
        std::fs::write(
            &file,
            "max_batch = 7\nmax_queued_jobs = 50\npids_limit = 64\ncpu_limit_cores = 2.5\nrequire_auth = true\n",
        )
        .unwrap();
        let file_flag = file.to_str().unwrap();
        // A flag equal to the default still wins over the file.
        let (args, explicit) = parse_serve(&[
            "--config",
            file_flag,
            "--max-batch",
            "1000",
            "--pids-limit",
            "99",
        ]);
        let merged = file::with_file(args, &explicit).unwrap();
        assert_eq!(merged.limits.max_batch, 1000);
        assert_eq!(merged.checker.sandbox.pids_limit, 99);
        assert_eq!(merged.limits.max_queued_jobs, 50);
        assert_eq!(merged.checker.sandbox.cpu_limit_cores, 2.5);
        assert!(merged.require_auth);
        // What neither gives is the default.
        assert_eq!(merged.limits.max_body_bytes, 16 << 20);
        assert_eq!(merged.config.as_deref(), Some(file.as_path()));
    }

    #[test]
    fn each_struct_names_the_setting_it_refuses() {
        let refused = |change: fn(&mut ServeArgs)| {
            let mut args = ServeArgs::default();
            change(&mut args);
            args.validate().unwrap_err().setting
        };
        assert_eq!(
            refused(|a| a.checker.sandbox.cpu_limit_cores = f64::NAN),
            "cpu_limit_cores"
        );
        assert_eq!(refused(|a| a.checker.sandbox.pids_limit = 2), "pids_limit");
        assert_eq!(
            refused(|a| a.checker.sandbox.memory_limit_mib = 0),
            "memory_limit_mib"
        );
        assert_eq!(
            refused(|a| a.checker.sandbox.sandbox = "docker".into()),
            "sandbox"
        );
        assert_eq!(refused(|a| a.checker.lease_seconds = 0.5), "lease_seconds");
        assert_eq!(refused(|a| a.checker.drain_seconds = -1.0), "drain_seconds");
        assert_eq!(
            refused(|a| a.checker.prestart = vec![" ".into()]),
            "prestart"
        );
        assert_eq!(
            refused(|a| a.stores.store = Some("mysql://x".into())),
            "store"
        );
        assert_eq!(refused(|a| a.queue.max_attempts = 0), "max_attempts");
        assert_eq!(
            refused(|a| a.queue.outage_gap_seconds = 1.0),
            "outage_gap_seconds"
        );
        assert_eq!(refused(|a| a.limits.max_body_bytes = 0), "max_body_bytes");
        assert_eq!(
            refused(|a| a.limits.idempotency_key_hours = 0.0),
            "idempotency_key_hours"
        );
        assert_eq!(refused(|a| a.limits.max_batch = 0), "max_batch");
        assert_eq!(refused(|a| a.limits.max_queued_jobs = 0), "max_queued_jobs");
        assert_eq!(
            refused(|a| a.limits.max_timeout_seconds = 0.0),
            "max_timeout_seconds"
        );
        assert_eq!(
            refused(|a| a.limits.max_wait_seconds = f64::INFINITY),
            "max_wait_seconds"
        );
        assert!(ServeArgs::default().validate().is_ok());
        let error = SettingError::new("pids_limit", "too few".to_string());
        assert_eq!(
            error.to_string(),
            "invalid setting `pids_limit` (--pids-limit, LEAN_FARM_PIDS_LIMIT): too few"
        );
    }
}
