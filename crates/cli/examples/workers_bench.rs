//! Many workers on one API replica: W simulated lease loops in this process
//! (default 500) speak the real worker HTTP API (`/v1/worker/lease` long
//! polls and `/v1/worker/complete`) to one `leanfarm serve --slots 0` on
//! PostgreSQL. A loop stands for a `leanfarm worker` of S slots: it leases
//! up to its free slots in one call, "checks" each job by sleeping the
//! stand-in cost, and completes it.
//!
//! Two phases:
//! - idle: every loop long-polls an empty queue for `--idle-seconds`; the
//!   CPU the API replica and PostgreSQL spend meanwhile is the idle cost;
//! - load: `--jobs` jobs are enqueued straight into the store by this
//!   process (another process: the waiting loops are woken by the store's
//!   notifications), and the loops drain them: jobs/s, lease latency of the
//!   leases that brought jobs (p50/p99), API CPU per job, and the
//!   replica's PostgreSQL connections (`pg_stat_activity`, peak).
//!
//! Run with `bench/workers.sh [--workers 500] [--slots 1] [--jobs 20000]
//! [--cost-ms 0] [--idle-seconds 30] [--postgres URL]`.

use leanfarm_core::{CheckRequest, Policy, Verdict};
use leanfarm_store::{NewJob, Store};
use leanfarm_testkit::bench::{command_line_argument, percentile};
use leanfarm_testkit::{built_binary, leanfarm_stdout};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API replica, stopped (SIGTERM, then SIGKILL after 10 s) on drop.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.0.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').map_or(0, |at| at + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// CPU seconds used so far by the given PostgreSQL backends (by pid).
fn backends_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(connection);
    client
}

/// The pids of the backends connected to `database` (but the caller's own).
async fn backends(admin: &tokio_postgres::Client, database: &str) -> Vec<u32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get::<_, i32>(0) as u32)
        .collect()
}

fn new_jobs(count: usize) -> Vec<NewJob> {
    (0..count)
        .map(|i| NewJob {
            id: format!("w{i:08}"),
            tenant: format!("tenant{}", i % 4),
            batch_id: None,
            request: CheckRequest {
                custom_id: None,
                code: format!("theorem t{i} : True := trivial"),
                timeout_seconds: 60.0,
                policy: Policy::default(),
                infotree: None,
                trace_context: None,
            },
            header_key: String::new(),
            max_attempts: 3,
            toolchain: None,
            project: None,
        })
        .collect()
}

struct Shared {
    url: String,
    token: String,
    client: reqwest::Client,
    slots: usize,
    cost: Duration,
    /// Latency of each lease call that brought jobs, in milliseconds.
    latencies: Mutex<Vec<f64>>,
    completed: AtomicUsize,
    lease_calls: AtomicUsize,
    stop: AtomicBool,
}

/// One simulated worker: lease up to its slots (long poll), complete each.
async fn lease_loop(shared: Arc<Shared>, index: usize) {
    let worker_id = format!("sim-{index:04}");
    let verdict = serde_json::to_value(Verdict::valid()).expect("verdict");
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let response = shared
            .client
            .post(format!("{}/v1/worker/lease", shared.url))
            .bearer_auth(&shared.token)
            .json(&json!({
                "worker_id": worker_id,
                "max": shared.slots,
                "lease_seconds": 60.0,
                "wait_seconds": 10.0,
            }))
            .send()
            .await;
        shared.lease_calls.fetch_add(1, Ordering::Relaxed);
        let leases: Vec<Value> = match response {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.expect("lease json");
                body["leases"].as_array().cloned().unwrap_or_default()
            }
            Ok(response) => {
                eprintln!("lease answered {}", response.status());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(error) => {
                eprintln!("lease failed: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if leases.is_empty() {
            continue;
        }
        shared
            .latencies
            .lock()
            .expect("latencies")
            .push(started.elapsed().as_secs_f64() * 1000.0);
        if !shared.cost.is_zero() {
            tokio::time::sleep(shared.cost).await;
        }
        for lease in leases {
            let response = shared
                .client
                .post(format!("{}/v1/worker/complete", shared.url))
                .bearer_auth(&shared.token)
                .json(&json!({
                    "job_id": lease["job_id"],
                    "lease_id": lease["lease_id"],
                    "verdict": verdict,
                }))
                .send()
                .await
                .expect("complete");
            assert!(
                response.status().is_success(),
                "complete: {}",
                response.status()
            );
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() {
    let workers: usize = command_line_argument("--workers", "500")
        .parse()
        .expect("--workers N");
    let slots: usize = command_line_argument("--slots", "1")
        .parse()
        .expect("--slots N");
    let jobs: usize = command_line_argument("--jobs", "20000")
        .parse()
        .expect("--jobs N");
    let cost_ms: u64 = command_line_argument("--cost-ms", "0")
        .parse()
        .expect("--cost-ms N");
    let idle_seconds: u64 = command_line_argument("--idle-seconds", "30")
        .parse()
        .expect("--idle-seconds N");
    let admin_url =
        command_line_argument("--postgres", "postgres://postgres@127.0.0.1:5432/postgres");
    let name = format!("leanfarm_workers_bench_{}", std::process::id());
    let admin = admin_client(&admin_url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the url");
    let store_url = format!("{base}/{name}");
    let worker_token = leanfarm_stdout(&[
        "tenant", "--store", &store_url, "farm-key", "--scope", "worker",
    ]);

    let data = tempfile::tempdir().expect("data dir");
    let mut server = Command::new(built_binary("leanfarm"))
        .args([
            "serve",
            "--slots",
            "0",
            "--require-auth",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--store", &store_url])
        .arg("--data-dir")
        .arg(data.path())
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let api_pid = server.id();
    let replica = Replica(server);
    let mut url = String::new();
    let mut lines = stderr.lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("leanfarm: serving on ") {
            url = rest.split_whitespace().next().unwrap_or("").to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "the API replica did not start");
    // Keep reading the replica's log, so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("api: {line}")
        }
    });

    let shared = Arc::new(Shared {
        url,
        token: worker_token,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(workers)
            .build()
            .expect("client"),
        slots,
        cost: Duration::from_millis(cost_ms),
        latencies: Mutex::new(Vec::new()),
        completed: AtomicUsize::new(0),
        lease_calls: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let loops: Vec<_> = (0..workers)
        .map(|index| tokio::spawn(lease_loop(Arc::clone(&shared), index)))
        .collect();
    println!(
        "{workers} simulated workers x {slots} slot(s) on 1 API replica (PostgreSQL), stand-in cost {cost_ms} ms; load average {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // Idle: let every loop reach its long poll, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pg = backends(&admin, &name).await;
    let (api_before, pg_before, calls_before) = (
        cpu_seconds(api_pid),
        backends_cpu(&pg),
        shared.lease_calls.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let (api_idle, pg_idle) = (
        cpu_seconds(api_pid) - api_before,
        backends_cpu(&pg) - pg_before,
    );
    let idle_calls = shared.lease_calls.load(Ordering::Relaxed) - calls_before;
    println!(
        "idle {idle_seconds} s: API CPU {:.2} % of a core, PostgreSQL CPU {:.2} % of a core ({} connections), lease calls {:.1}/s",
        100.0 * api_idle / idle_seconds as f64,
        100.0 * pg_idle / idle_seconds as f64,
        pg.len(),
        idle_calls as f64 / idle_seconds as f64,
    );

    // Load: enqueue from this process; the replica hears of it from the store.
    let store = Store::open(&store_url).await.expect("store");
    let api_before = cpu_seconds(api_pid);
    let mut pg = backends(&admin, &name).await;
    let pg_before = backends_cpu(&pg);
    let started = Instant::now();
    for chunk in new_jobs(jobs).chunks(500) {
        store.enqueue(chunk.to_vec()).await.expect("enqueue");
    }
    let mut peak_connections = 0;
    while shared.completed.load(Ordering::Relaxed) < jobs {
        let now = backends(&admin, &name).await;
        // This process's own store connections are not the replica's.
        peak_connections = peak_connections.max(now.len());
        for pid in now {
            if !pg.contains(&pid) {
                pg.push(pid);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let api_cpu = cpu_seconds(api_pid) - api_before;
    let pg_cpu = backends_cpu(&pg) - pg_before;
    shared.stop.store(true, Ordering::Relaxed);
    let mut latencies = shared.latencies.lock().expect("latencies").clone();
    latencies.sort_by(f64::total_cmp);
    println!(
        "load {jobs} jobs: {:.0} jobs/s, lease latency p50 {:.1} ms p99 {:.1} ms ({} leases with jobs), API CPU {:.1} % of a core ({:.3} ms per job), PostgreSQL CPU {:.1} % of a core, PostgreSQL connections peak {} (the replica's and this process's)",
        jobs as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len(),
        100.0 * api_cpu / elapsed,
        1000.0 * api_cpu / jobs as f64,
        100.0 * pg_cpu / elapsed,
        peak_connections,
    );
    println!(
        "load average after {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for task in loops {
        task.abort();
    }
    drop(replica);
    drop(store);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
}
