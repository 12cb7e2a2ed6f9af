//! `leanfarm jobs`: the operator's view of the queue's dead letters, straight
//! on the store (run where the store is reachable, like `leanfarm tenant`).
//! `list` shows jobs by state (dead by default); `retry` puts dead jobs back
//! in the queue, by id, by batch or all of them, recording why.
//!
//! It never changes a job that is not dead, and never prints a snippet or a
//! verdict (only ids, tenants, attempts and errors). The HTTP API offers the
//! same to operator tokens (`/v1/operator/jobs`).

use crate::CliError;
use clap::{Args, Subcommand, ValueEnum};
use leanfarm_store::{DeadJobSelector, JobState, ListFilter, Store};

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Store URL: sqlite://PATH or postgres://...
    #[arg(long, env = "LEAN_FARM_STORE")]
    pub store: String,
    #[command(subcommand)]
    pub action: JobsAction,
}

#[derive(Subcommand, Debug)]
pub enum JobsAction {
    /// List jobs of every tenant in one state: id, tenant, batch, attempts, last error.
    List {
        #[arg(long, value_enum, default_value = "dead")]
        state: StateArg,
        /// Only this batch's jobs
        #[arg(long)]
        batch: Option<String>,
        /// Jobs at most
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Put dead jobs back in the queue with fresh attempts, recording why.
    Retry {
        /// Ids of dead jobs
        #[arg(required_unless_present_any = ["batch", "all_dead"], conflicts_with_all = ["batch", "all_dead"])]
        job_ids: Vec<String>,
        /// Every dead job of this batch
        #[arg(long, conflicts_with = "all_dead")]
        batch: Option<String>,
        /// Every dead job
        #[arg(long)]
        all_dead: bool,
        /// Why they are retried (recorded as their last error)
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StateArg {
    Queued,
    Running,
    Done,
    Dead,
}

impl From<StateArg> for JobState {
    fn from(state: StateArg) -> JobState {
        match state {
            StateArg::Queued => JobState::Queued,
            StateArg::Running => JobState::Running,
            StateArg::Done => JobState::Done,
            StateArg::Dead => JobState::Dead,
        }
    }
}

pub async fn run(args: JobsArgs) -> Result<(), CliError> {
    let store = Store::open(&args.store)
        .await
        .map_err(|error| CliError::Startup(format!("store {}: {error}", args.store)))?;
    let failed = |error: leanfarm_store::StoreError| CliError::Request(error.to_string());
    match args.action {
        JobsAction::List {
            state,
            batch,
            limit,
        } => {
            let jobs = store
                .list(&ListFilter {
                    state: Some(state.into()),
                    batch_id: batch,
                    limit: limit.max(1),
                    ..ListFilter::default()
                })
                .await
                .map_err(failed)?;
            println!("id\ttenant\tbatch\tattempts\tlast_error");
            for job in &jobs {
                println!(
                    "{}\t{}\t{}\t{}/{}\t{}",
                    job.id,
                    job.tenant,
                    job.batch_id.as_deref().unwrap_or("-"),
                    job.attempts,
                    job.max_attempts,
                    job.last_error.as_deref().unwrap_or("-").replace('\n', " ")
                );
            }
        }
        JobsAction::Retry {
            job_ids,
            batch,
            all_dead,
            reason,
        } => {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(CliError::Config(
                    "--reason must say why the jobs are retried".into(),
                ));
            }
            let selector = match (batch, all_dead) {
                (Some(batch), false) => DeadJobSelector::Batch(batch),
                (None, true) => DeadJobSelector::All,
                _ => DeadJobSelector::Ids(job_ids),
            };
            let retried = store.retry_dead(&selector, reason).await.map_err(failed)?;
            for job_id in &retried {
                println!("{job_id}");
            }
            eprintln!(
                "leanfarm: {} dead job(s) put back in the queue",
                retried.len()
            );
        }
    }
    Ok(())
}
