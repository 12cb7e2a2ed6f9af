//! Configuration of `leanfarm serve` and `leanfarm worker`, from one path:
//! flags, then `LEAN_FARM_*` environment variables, then an optional TOML
//! file (`--config`, serve only), then defaults. Each default is written
//! once, in the `defaults` module of the struct that holds the setting, and
//! serves clap's help and the file alike; `file` joins the file to the
//! rest without naming any setting.
//!
//! By concern: `server` (listening, auth, request and queue limits),
//! `checker` (toolchain, slots, leases; builds the driver), `sandbox` (the
//! sandbox's backend and limits), `store` (job and artifact stores). Each
//! struct has a `validate()` whose error names the setting. This module
//! builds a running `Farm` from settings; it must never hold a default
//! itself.

mod checker;
mod file;
mod sandbox;
mod server;
mod store;

pub use checker::{prestart, CheckerArgs};
pub use file::explicit_settings;
pub use server::ServeArgs;

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

/// JSON logs on stderr, filtered by LEAN_FARM_LOG, else at `default`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAN_FARM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
    args.validate()?;
    let data_dir = data_dir(&args.data_dir)?;
    let slots = args.checker.slots();
    let driver = match slots {
        0 => None,
        slots => Some(args.checker.build_driver(&data_dir, slots)?),
    };
    if let Some(driver) = &driver {
        prestart(driver).await?;
    }
    let store_url = args.stores.store_url(&data_dir);
    let store = Store::open(&store_url)
        .await
        .map_err(|error| CliError::Startup(format!("store {store_url}: {error}")))?;
    let artifacts_url = args.stores.artifacts_url(&data_dir);
    let artifacts = ArtifactStore::open(&artifacts_url)
        .map_err(|error| CliError::Startup(format!("artifacts {artifacts_url}: {error}")))?;
    let state = AppState::new(
        store,
        artifacts,
        driver,
        args.limits.limits(),
        args.require_auth,
    );
    let worker = args
        .checker
        .worker_config(format!("embedded-{}", uuid::Uuid::now_v7()));
    let addr = args.addr;
    Farm::start(state, addr, worker)
        .await
        .map_err(|error| CliError::Startup(format!("cannot listen on {addr}: {error}")))
}

/// `leanfarm serve`: `explicit` names the settings given by flag or
/// variable (`explicit_settings`), which the config file does not override.
pub async fn serve(args: ServeArgs, explicit: &[String]) -> Result<(), CliError> {
    let args = file::with_file(args, explicit)?;
    let farm = start_farm(args).await?;
    eprintln!(
        "leanfarm: serving on http://{} (Ctrl-C or SIGTERM to stop)",
        farm.local_addr
    );
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
