//! `leanfarm worker`: check jobs leased from a farm over HTTP, through any
//! of the farm's API replicas, keeping the verdicts not yet stored in a
//! spool in its data directory (`DATA_DIR/spool`).

use crate::config::{self, CheckerArgs};
use crate::CliError;
use clap::Args;
use leanfarm_server::WorkerProbes;
use leanfarm_worker::{HttpQueue, Reporting, Spool, WorkerStats};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The farm's URL, e.g. http://leanfarm:8000; repeat it (or separate by commas) for each API replica: the worker moves to the next when its replica fails
    #[arg(
        long = "server",
        env = "LEAN_FARM_SERVER",
        value_delimiter = ',',
        required = true
    )]
    pub servers: Vec<String>,
    /// PEM CA certificate(s) to trust for https:// servers, besides the system's roots
    #[arg(long, env = "LEAN_FARM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// A worker token (`leanfarm tenant key TENANT --scope worker`)
    #[arg(long, env = "LEAN_FARM_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Name in leases and logs [default: worker-<hostname>-<pid>]
    #[arg(long, env = "LEAN_FARM_WORKER_ID")]
    pub worker_id: Option<String>,
    #[command(flatten)]
    pub checker: CheckerArgs,
    #[command(flatten)]
    pub signing: crate::verify::SigningArgs,
    /// Directory for scratch space and the spool of verdicts not yet stored
    #[arg(long, env = "LEAN_FARM_DATA_DIR", default_value = "leanfarm-worker")]
    pub data_dir: PathBuf,
    /// Verdicts not yet stored the spool holds at most; while it is full, the worker leases no new work
    #[arg(long, env = "LEAN_FARM_SPOOL_CAPACITY", default_value_t = defaults::spool_capacity())]
    pub spool_capacity: usize,
    /// Serve /healthz, /readyz and /metrics about this worker, without a token, on this address (for a private network) [default: none]
    #[arg(long, env = "LEAN_FARM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub telemetry: config::TelemetryArgs,
}

/// The one place each worker default is written.
mod defaults {
    pub fn spool_capacity() -> usize {
        1000
    }
}

pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    args.checker.validate()?;
    let data_dir = config::data_dir(&args.data_dir)?;
    let slots = args.checker.slots().max(1);
    let driver = args.checker.build_driver(&data_dir, slots)?;
    let stats = WorkerStats::default();
    let probes = WorkerProbes::new(driver.clone(), stats.clone());
    let (close_probes, probes_closed) = watch::channel(false);
    let probe_server = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
                CliError::Config(format!("--metrics-addr {addr}: cannot listen: {error}"))
            })?;
            let local_addr = listener.local_addr().map_err(|error| {
                CliError::Config(format!("--metrics-addr {addr}: cannot listen: {error}"))
            })?;
            eprintln!("leanfarm: worker probes and metrics on http://{local_addr}/metrics");
            Some(tokio::spawn(leanfarm_server::serve_worker_probes(
                listener,
                std::sync::Arc::clone(&probes),
                probes_closed,
            )))
        }
        None => None,
    };
    config::prestart(&driver).await?;
    probes.set_pool_ready();
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("worker-{}-{}", host.trim(), std::process::id())
    });
    let worker_config = args.checker.worker_config(worker_id.clone());
    let servers: Vec<String> = args
        .servers
        .iter()
        .map(|server| server.trim().to_string())
        .filter(|server| !server.is_empty())
        .collect();
    let queue = HttpQueue::with_servers_and_ca(&servers, &args.token, args.ca_cert.as_deref())
        .map_err(|error| CliError::Config(error.to_string()))?;
    // A farm whose certificate is not trusted is refused at once, not retried.
    queue
        .verify_certificates()
        .await
        .map_err(|error| CliError::Config(error.to_string()))?;
    let spool = Spool::open(&data_dir.join("spool"), args.spool_capacity)
        .map_err(|error| CliError::Config(format!("--spool-capacity / --data-dir: {error}")))?;
    let reporting = Reporting {
        spool: Some(spool),
        stats,
        ..Reporting::default()
    };
    // Tactic sessions are hosted over their own client of the same API.
    let session_ops =
        HttpQueue::with_servers_and_ca(&servers, &args.token, args.ca_cert.as_deref())
            .map_err(|error| CliError::Config(error.to_string()))?;
    let queue = args.signing.apply(queue, &worker_id)?;
    let (stop, stopped) = watch::channel(false);
    let server_list = servers.join(", ");
    eprintln!("leanfarm: worker {worker_id} with {slots} slots, leasing from {server_list}");
    tracing::info!(worker_id, slots, servers = %server_list, "worker started");
    let sessions = tokio::spawn(leanfarm_worker::sessions::host_sessions(
        session_ops,
        driver.clone(),
        leanfarm_worker::sessions::SessionHostConfig {
            host: worker_id.clone(),
            max_sessions: slots.max(1),
            sweep_interval: std::time::Duration::from_secs(1),
        },
        stopped.clone(),
    ));
    let work = tokio::spawn(leanfarm_worker::run_with_reporting(
        queue,
        driver,
        worker_config,
        reporting,
        stopped,
    ));
    config::shutdown_signal().await;
    tracing::info!("shutting down: no new leases; draining running checks");
    probes.set_draining();
    let _ = stop.send(true);
    let _ = work.await;
    let _ = sessions.await;
    let _ = close_probes.send(true);
    if let Some(probe_server) = probe_server {
        let _ = probe_server.await;
    }
    Ok(())
}
