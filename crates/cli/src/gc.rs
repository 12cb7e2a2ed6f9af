//! `leanfarm gc [--dry-run]`: delete the final jobs past their retention
//! and their artifacts, once (`leanfarm_server::collect_garbage`, which
//! `serve` also runs periodically). It takes `serve`'s own settings, from
//! the same flags, variables and `--config` file, so the command line that
//! runs a farm also collects its garbage; of them it uses the data
//! directory, the stores and the retention policy. It prints one line per
//! job it deleted (or, with `--dry-run`, would delete) and a summary.

use crate::config::{self, ServeArgs};
use crate::CliError;
use clap::Args;
use leanfarm_store::{ArtifactStore, Store};

#[derive(Args, Debug)]
pub struct GcArgs {
    /// The farm's settings, as `serve` takes them (flags, variables, `--config`)
    #[command(flatten)]
    pub farm: ServeArgs,
    /// List the expired jobs (one batch) and delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `explicit` names the settings given by flag or variable, which the
/// config file does not override (as for `serve`).
pub async fn run(args: GcArgs, explicit: &[String]) -> Result<(), CliError> {
    let farm = config::with_file(args.farm, explicit)?;
    farm.stores.validate()?;
    farm.retention.validate()?;
    let data_dir = config::data_dir(&farm.data_dir)?;
    let store_url = farm.stores.store_url(&data_dir);
    let store = Store::open(&store_url)
        .await
        .map_err(|error| CliError::Startup(format!("store {store_url}: {error}")))?;
    let artifacts_url = farm.stores.artifacts_url(&data_dir);
    let artifacts = ArtifactStore::open(&artifacts_url)
        .map_err(|error| CliError::Startup(format!("artifacts {artifacts_url}: {error}")))?;
    let policy = farm.retention.policy();
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
