//! Memory of a fleet's processes: an API replica (`serve --slots 0`) and a
//! `leanfarm worker --simulate`, each measured by its own RSS (the worker's
//! REPLs are processes of their own and are not counted).
//!
//! Prints the RSS of both:
//! - at rest after start;
//! - while `--jobs` jobs at zero stand-in cost go through them (submitted in
//!   batches of 100 by 4 clients), and at rest after them;
//! - every `--every` seconds of a soak of `--minutes` minutes of steady load
//!   (`--clients` clients, each submitting 8-snippet batches at
//!   `--soak-cost-ms` per snippet and waiting for them), and at rest after
//!   it; then the spread of the soak's samples (max / min - 1), which must
//!   stay within 10 % (the first minute, while caches fill, is left out).
//!
//! Run with `bench/memory.sh [--jobs 100000] [--minutes 60] [--every 60]
//! [--slots 2] [--clients 4] [--soak-cost-ms 10] [--sandbox native]
//! [--postgres postgres://...]` (without `--postgres` the store is SQLite).

use leanfarm_testkit::bench::command_line_argument;
use leanfarm_testkit::{built_binary, leanfarm_stdout};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Processes(Vec<Child>);

impl Drop for Processes {
    /// SIGTERM to all, then SIGKILL what is left after 10 s.
    fn drop(&mut self) {
        for child in &self.0 {
            // SAFETY: kill(2) on our own children's pids.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The number of threads of a process.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

struct Fleet {
    api: u32,
    worker: u32,
}

impl Fleet {
    fn line(&self, label: &str, jobs: u64) -> (f64, f64) {
        let (api, worker) = (rss_mib(self.api), rss_mib(self.worker));
        println!(
            "  {label:<24} {jobs:>9} jobs   API replica {api:>6.1} MiB ({:>2} threads)   worker {worker:>6.1} MiB ({:>2} threads)",
            threads(self.api),
            threads(self.worker),
        );
        (api, worker)
    }
}

async fn admin(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect("admin sql");
}

fn code(cost_ms: u64, index: u64) -> String {
    if cost_ms == 0 {
        format!("import Mathlib\ntheorem memory_{index} : True := trivial")
    } else {
        format!(
            "import Mathlib\ntheorem memory_{index} : True := by\n  -- sim: sleep {cost_ms}\n  trivial"
        )
    }
}

/// Submit one batch and wait for its verdicts (long polls of `/v1/checks`
/// with `wait`); returns how many came back valid.
async fn batch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    first: u64,
    size: u64,
    cost_ms: u64,
) -> u64 {
    let snippets: Vec<Value> = (first..first + size)
        .map(|i| json!({"code": code(cost_ms, i)}))
        .collect();
    let response: Value = client
        .post(format!("{url}/v1/checks"))
        .bearer_auth(token)
        .json(&json!({"snippets": snippets, "wait": 300}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let results = response["results"].as_array().expect("results");
    assert_eq!(results.len() as u64, size, "{response}");
    results
        .iter()
        .filter(|r| r["verdict"]["status"] == "valid")
        .count() as u64
}

#[tokio::main]
async fn main() {
    let jobs: u64 = command_line_argument("--jobs", "100000")
        .parse()
        .expect("--jobs N");
    let minutes: f64 = command_line_argument("--minutes", "60")
        .parse()
        .expect("--minutes N");
    let every: u64 = command_line_argument("--every", "60")
        .parse()
        .expect("--every SECONDS");
    let slots = command_line_argument("--slots", "2");
    let clients: usize = command_line_argument("--clients", "4")
        .parse()
        .expect("--clients N");
    let soak_cost_ms: u64 = command_line_argument("--soak-cost-ms", "10")
        .parse()
        .expect("--soak-cost-ms N");
    let sandbox = command_line_argument("--sandbox", "native");
    let postgres = command_line_argument("--postgres", "");

    let data = tempfile::tempdir().expect("data dir");
    let database = format!("leanfarm_memory_bench_{}", std::process::id());
    let store = if postgres.is_empty() {
        format!("sqlite://{}", data.path().join("leanfarm.db").display())
    } else {
        admin(&postgres, &format!("CREATE DATABASE {database}")).await;
        let (base, _) = postgres.rsplit_once('/').expect("a database in the url");
        format!("{base}/{database}")
    };
    leanfarm_stdout(&[
        "tenant",
        "--store",
        &store,
        "set",
        "bench",
        "--rps",
        "100000",
        "--max-running",
        "100000",
        "--max-queued",
        "1000000",
    ]);
    let user = leanfarm_stdout(&[
        "tenant", "--store", &store, "key", "bench", "--scope", "user",
    ]);
    let worker_token =
        leanfarm_stdout(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);

    let mut processes = Processes(Vec::new());
    let mut server = Command::new(built_binary("leanfarm"))
        .args([
            "serve",
            "--slots",
            "0",
            "--require-auth",
            "--addr",
            "127.0.0.1:0",
            "--store",
            &store,
        ])
        .arg("--data-dir")
        .arg(data.path().join("api"))
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let api = server.id();
    processes.0.push(server);
    let mut url = String::new();
    for line in stderr.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("leanfarm: serving on ") {
            url = rest.split_whitespace().next().unwrap_or("").to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "the API replica did not start");
    let worker = Command::new(built_binary("leanfarm"))
        .args([
            "worker",
            "--simulate",
            "--slots",
            &slots,
            "--server",
            &url,
            "--token",
            &worker_token,
            "--sandbox",
            &sandbox,
        ])
        .arg("--data-dir")
        .arg(data.path().join("worker"))
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker");
    let fleet = Fleet {
        api,
        worker: worker.id(),
    };
    processes.0.push(worker);
    let client = reqwest::Client::new();
    let store_name = if postgres.is_empty() {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!("memory: 1 API replica ({store_name}, no in-process workers) + 1 leanfarm worker ({slots} slots, sandbox {sandbox}); RSS of each process (its REPLs not counted)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.line("at rest, started", 0);

    // Phase 1: `jobs` jobs at zero stand-in cost, 4 clients of 100-snippet batches.
    let next = Arc::new(AtomicU64::new(0));
    let valid = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url, user) = (client.clone(), url.clone(), user.clone());
        let (next, valid) = (Arc::clone(&next), Arc::clone(&valid));
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(100, Ordering::Relaxed);
                if first >= jobs {
                    return;
                }
                let size = 100.min(jobs - first);
                let ok = batch(&client, &url, &user, first, size, 0).await;
                valid.fetch_add(ok, Ordering::Relaxed);
            }
        }));
    }
    let mut report = tokio::time::interval(Duration::from_secs(every));
    report.tick().await;
    let mut all = futures_join(tasks);
    loop {
        tokio::select! {
            _ = &mut all => break,
            _ = report.tick() => {
                fleet.line("running jobs at 0 ms", valid.load(Ordering::Relaxed));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = valid.load(Ordering::Relaxed);
    assert_eq!(done, jobs, "every job valid");
    println!(
        "  {jobs} jobs in {elapsed:.0} s ({:.0} jobs/s)",
        jobs as f64 / elapsed
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (api_after_jobs, worker_after_jobs) = fleet.line("at rest, after the jobs", done);

    // Phase 2: the soak.
    let stop = Arc::new(AtomicBool::new(false));
    let soaked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, user) = (client.clone(), url.clone(), user.clone());
        let (next, soaked, stop) = (Arc::clone(&next), Arc::clone(&soaked), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(8, Ordering::Relaxed);
                let ok = batch(&client, &url, &user, first, 8, soak_cost_ms).await;
                soaked.fetch_add(ok, Ordering::Relaxed);
            }
        }));
    }
    let soak = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    while started.elapsed() < soak {
        tokio::time::sleep(Duration::from_secs(every).min(soak - started.elapsed().min(soak)))
            .await;
        let label = format!("soak t={:.0}s", started.elapsed().as_secs_f64());
        let sample = fleet.line(&label, done + soaked.load(Ordering::Relaxed));
        if started.elapsed() > Duration::from_secs(60) {
            samples.push(sample);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("soak client");
    }
    let soaked = soaked.load(Ordering::Relaxed);
    println!(
        "  soak: {soaked} jobs in {:.0} s ({:.0} jobs/s, {clients} clients of 8-snippet batches at {soak_cost_ms} ms)",
        started.elapsed().as_secs_f64(),
        soaked as f64 / started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (api_rest, worker_rest) = fleet.line("at rest, after the soak", done + soaked);
    let spread = |values: Vec<f64>| {
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        100.0 * (max / min - 1.0)
    };
    if !samples.is_empty() {
        println!(
            "  soak spread (max / min - 1, after its first minute): API replica {:.1} %, worker {:.1} %",
            spread(samples.iter().map(|s| s.0).collect()),
            spread(samples.iter().map(|s| s.1).collect()),
        );
    }
    println!(
        "  at rest: API replica {api_after_jobs:.1} -> {api_rest:.1} MiB (goal <= 50), worker {worker_after_jobs:.1} -> {worker_rest:.1} MiB (goal <= 30)"
    );
    drop(processes);
    if !postgres.is_empty() {
        admin(&postgres, &format!("DROP DATABASE {database} WITH (FORCE)")).await;
    }
}

/// One future that ends when every task has.
fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async move {
        for task in tasks {
            task.await.expect("client");
        }
    })
}
