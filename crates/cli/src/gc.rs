//! `leanfarm gc [--dry-run]`: delete the final jobs past their retention
//! and their artifacts, once, with the store, artifact and retention
//! settings of `leanfarm serve` (`leanfarm_server::collect_garbage`, which
//! `serve` also runs periodically). It prints one line per job it deleted
//! (or, with `--dry-run`, would delete) and a summary.

use crate::config::{RetentionArgs, StoreArgs};
use crate::CliError;
use clap::Args;
use leanfarm_store::{ArtifactStore, Store};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Directory of the SQLite store and the artifacts, as for `serve`
    #[arg(long, env = "LEAN_FARM_DATA_DIR", default_value_os_t = crate::config::default_data_dir())]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// List the expired jobs (one batch) and delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: GcArgs) -> Result<(), CliError> {
    args.stores.validate()?;
    args.retention.validate()?;
    let data_dir = crate::config::data_dir(&args.data_dir)?;
    let store_url = args.stores.store_url(&data_dir);
    let store = Store::open(&store_url)
        .await
        .map_err(|error| CliError::Startup(format!("store {store_url}: {error}")))?;
    let artifacts_url = args.stores.artifacts_url(&data_dir);
    let artifacts = ArtifactStore::open(&artifacts_url)
        .map_err(|error| CliError::Startup(format!("artifacts {artifacts_url}: {error}")))?;
    let policy = args.retention.policy();
    let now = leanfarm_store::now_millis();
    let result =
        leanfarm_server::collect_garbage(&store, &artifacts, &policy, now, args.dry_run).await;
    let report = match result {
        Ok(report) => report,
        Err(error) => return Err(CliError::Request(format!("retention: {error}"))),
    };
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for job in &report.jobs {
        let state = match job.state {
            leanfarm_store::JobState::Dead => "dead",
            _ => "done",
        };
        println!(
            "{verb} job {} (tenant {}, {state}, {}, finished at {})",
            job.id,
            job.tenant,
            job.status.as_deref().unwrap_or("no verdict"),
            job.finished_at
        );
    }
    if args.dry_run {
        let more = if report.truncated {
            " (one batch: more may have expired)"
        } else {
            ""
        };
        println!(
            "dry run: {} expired jobs would be deleted{more}",
            report.jobs.len()
        );
    } else {
        println!(
            "deleted {} expired jobs and {} artifacts",
            report.deleted_jobs, report.deleted_artifacts
        );
    }
    Ok(())
}
