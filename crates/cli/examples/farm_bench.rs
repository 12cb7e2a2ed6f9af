//! End-to-end benchmark of `leanfarm serve --simulate`.
//!
//! For 1, 2 and 4 worker slots it starts a farm (the release `leanfarm`
//! binary beside this example), and measures with a fixed stand-in cost per
//! snippet (`-- sim: sleep COST`; sleeping rather than burning CPU makes the
//! physical limit exactly slots / cost on any machine, so what is measured is
//! the farm's own overhead):
//! - added latency per job: end-to-end request time minus the check's own
//!   time (`timings.body_ms`), with as many clients as slots (no queueing);
//! - throughput with one snippet per request (2 x slots clients) and with
//!   8-snippet batches (2 x slots clients), against the physical limit;
//! - the server's own CPU per snippet in each of those two runs: user +
//!   system time of the `leanfarm serve` process from `/proc/PID/stat`
//!   (its threads, not its REPLs), divided by the jobs of the run.
//!
//! With `--compare OTHER_BINARY` every slot count runs on both binaries in
//! turn (this build first), so two builds are compared in one run on the
//! same machine load; each row is labelled with its binary.
//!
//! Run with `bench/farm.sh [--cost-ms 50] [--jobs 200] [--sandbox native]
//! [--slots 1,2,4] [--compare PATH]`.

use leanfarm_testkit::bench::{command_line_argument, percentile};
use leanfarm_testkit::built_binary;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Farm {
    child: std::process::Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Farm {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// SIGTERM, so the farm tears its sandboxes down; SIGKILL after 10 s.
fn stop(child: &mut std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Farm {
    /// User + system CPU seconds the server process has spent so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the farm's /proc/PID/stat");
        // The fields after the command name (which may hold spaces) start
        // at field 3 (state); utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
            .split_whitespace()
            .collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }
}

fn start_farm(binary: &std::path::Path, slots: usize, sandbox: &str) -> Farm {
    let data = tempfile::tempdir().expect("data dir");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--simulate",
            "--addr",
            "127.0.0.1:0",
            "--sandbox",
            sandbox,
            "--slots",
            &slots.to_string(),
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "{}: {error} (build it: cargo build --release -p leanfarm)",
                binary.display()
            )
        });
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut url = String::new();
    for line in stderr.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("leanfarm: serving on ") {
            url = rest.split_whitespace().next().unwrap_or("").to_string();
            break;
        }
        eprintln!("{line}");
    }
    assert!(!url.is_empty(), "the farm did not start");
    Farm {
        child,
        url,
        _data: data,
    }
}

fn code(cost_ms: u64, index: usize) -> String {
    format!(
        "import Mathlib\ntheorem bench_{index} : True := by\n  -- sim: sleep {cost_ms}\n  trivial"
    )
}

/// Run `jobs` single-snippet requests from `clients` clients; returns
/// (elapsed, end-to-end ms per job, check ms per job).
async fn single_requests(
    url: &str,
    clients: usize,
    jobs: usize,
    cost_ms: u64,
) -> (Duration, Vec<f64>, Vec<f64>) {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, url) = (client.clone(), Arc::clone(&next), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= jobs {
                    return samples;
                }
                let body = json!({"snippets": [{"code": code(cost_ms, index)}], "wait": 120});
                let sent = Instant::now();
                let response: Value = client
                    .post(format!("{url}/v1/checks"))
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                let end_to_end = sent.elapsed().as_secs_f64() * 1000.0;
                let verdict = &response["results"][0]["verdict"];
                assert_eq!(verdict["status"], "valid", "{response}");
                samples.push((
                    end_to_end,
                    verdict["timings"]["body_ms"].as_f64().unwrap_or(0.0),
                ));
            }
        }));
    }
    let mut end_to_end = Vec::new();
    let mut checks = Vec::new();
    for task in tasks {
        for (total, check) in task.await.expect("client") {
            end_to_end.push(total);
            checks.push(check);
        }
    }
    (started.elapsed(), end_to_end, checks)
}

/// Run `jobs` snippets as 8-snippet batches from `clients` clients.
async fn batches(url: &str, clients: usize, jobs: usize, cost_ms: u64) -> Duration {
    const BATCH: usize = 8;
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, url) = (client.clone(), Arc::clone(&next), url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                if first >= jobs {
                    return;
                }
                let snippets: Vec<Value> = (first..(first + BATCH).min(jobs))
                    .map(|i| json!({"code": code(cost_ms, i)}))
                    .collect();
                let response: Value = client
                    .post(format!("{url}/v1/checks"))
                    .json(&json!({"snippets": snippets, "wait": 300}))
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                assert!(
                    response["results"]
                        .as_array()
                        .expect("results")
                        .iter()
                        .all(|r| r["verdict"]["status"] == "valid"),
                    "{response}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("batch client");
    }
    started.elapsed()
}

/// One row: every measurement of one binary at one slot count.
async fn measure(
    label: &str,
    binary: &std::path::Path,
    slots: usize,
    sandbox: &str,
    jobs: usize,
    cost_ms: u64,
) {
    let farm = start_farm(binary, slots, sandbox);
    // Warm every REPL first so start-up is not measured.
    single_requests(&farm.url, slots, slots * 2, cost_ms).await;
    let (_, mut end_to_end, checks) = single_requests(&farm.url, slots, jobs / 2, cost_ms).await;
    let mut added: Vec<f64> = end_to_end
        .iter()
        .zip(&checks)
        .map(|(total, check)| total - check)
        .collect();
    added.sort_by(f64::total_cmp);
    end_to_end.sort_by(f64::total_cmp);
    let cpu_before = farm.cpu_seconds();
    let (elapsed, _, _) = single_requests(&farm.url, 2 * slots, jobs, cost_ms).await;
    let single_cpu_ms = (farm.cpu_seconds() - cpu_before) * 1000.0 / jobs as f64;
    let single_rate = jobs as f64 / elapsed.as_secs_f64();
    let cpu_before = farm.cpu_seconds();
    let batch_rate = jobs as f64
        / batches(&farm.url, 2 * slots, jobs, cost_ms)
            .await
            .as_secs_f64();
    let batch_cpu_ms = (farm.cpu_seconds() - cpu_before) * 1000.0 / jobs as f64;
    let load = load_average();
    let limit = if cost_ms == 0 {
        f64::INFINITY
    } else {
        slots as f64 * 1000.0 / cost_ms as f64
    };
    println!(
        "{label:>5} {slots:>5}  {:>8.2} / {:>7.2}  {:>8.1} / {:>7.1}  {:>8.1} {:>6.1} % {:>6.3}  {:>8.1} {:>6.1} % {:>6.3}  {load:>5}",
        percentile(&added, 0.5),
        percentile(&added, 0.99),
        percentile(&end_to_end, 0.5),
        percentile(&end_to_end, 0.99),
        single_rate,
        100.0 * single_rate / limit,
        single_cpu_ms,
        batch_rate,
        100.0 * batch_rate / limit,
        batch_cpu_ms,
    );
}

/// The 1-minute load average, as `/proc/loadavg` prints it.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}

#[tokio::main]
async fn main() {
    let cost_ms: u64 = command_line_argument("--cost-ms", "50")
        .parse()
        .expect("--cost-ms N");
    let jobs: usize = command_line_argument("--jobs", "200")
        .parse()
        .expect("--jobs N");
    let sandbox = command_line_argument("--sandbox", "native");
    let slot_counts: Vec<usize> = command_line_argument("--slots", "1,2,4")
        .split(',')
        .map(|n| n.trim().parse().expect("--slots N[,N...]"))
        .collect();
    let mut binaries = vec![("A", built_binary("leanfarm"))];
    let compare = command_line_argument("--compare", "");
    if !compare.is_empty() {
        binaries.push(("B", std::path::PathBuf::from(&compare)));
    }
    println!("leanfarm serve --simulate, stand-in cost {cost_ms} ms per snippet (sleep), {jobs} jobs per run, sandbox {sandbox}");
    for (label, binary) in &binaries {
        println!("{label}: {}", binary.display());
    }
    println!("limit: the physical limit, slots / cost; CPU: the server's user + system ms per snippet in that run; load: 1-minute load average after the row");
    println!(
        "{:>5} {:>5}  {:>18}  {:>18}  {:>25}  {:>25}  {:>5}",
        "bin",
        "slots",
        "added p50/p99 ms",
        "e2e p50/p99 ms",
        "1/request: jobs/s, CPU",
        "8-batches: jobs/s, CPU",
        "load"
    );
    for slots in slot_counts {
        for (label, binary) in &binaries {
            measure(label, binary, slots, &sandbox, jobs, cost_ms).await;
        }
    }
}
