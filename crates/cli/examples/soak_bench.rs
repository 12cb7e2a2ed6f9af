//! Soak benchmark of `leanfarm serve --simulate`: a steady mixed stream above
//! capacity for a bounded time, watching what long runs do to the farm.
//!
//! The stream mixes valid proofs, `sorry`, Lean errors, timeouts and
//! snippets that each allocate and keep 64 MiB (`-- sim: memory 64`): a
//! REPL keeps what its snippets allocated, as real Lean keeps every
//! environment, so reused REPLs grow. Each of those snippets needs far less
//! than the memory limit on its own, so any `out_of_memory` verdict for one
//! is wrong: the farm must recycle or retry before it blames a snippet.
//!
//! Prints, every `--every` seconds: the farm's RSS, REPL recycles by cause
//! (from `/metrics`), verdicts by status; and at the end the count of wrong
//! `out_of_memory` verdicts, which must be 0 (the process exits 1 if not).
//!
//! Run with `bench/soak.sh [--minutes 10] [--slots 2] [--memory-mib 512]
//! [--sandbox native]`.

use leanfarm_testkit::bench::command_line_argument;
use leanfarm_testkit::built_binary;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kinds of snippet in the stream, in turn: memory-keeping snippets
/// are frequent and timeouts (which end their REPL) rare, so REPLs live
/// long enough to grow.
const KINDS: [&str; 20] = [
    "valid", "memory", "sorry", "memory", "error", "memory", "valid", "memory", "sorry", "memory",
    "valid", "memory", "error", "memory", "valid", "memory", "sorry", "memory", "valid", "timeout",
];

fn snippet(kind: &str, index: u64) -> (String, f64) {
    let code = match kind {
        "valid" => format!("theorem soak_{index} : True := by\n  -- sim: sleep 20\n  trivial"),
        "sorry" => format!("theorem soak_{index} : 1 = 2 := by\n  sorry"),
        "error" => {
            format!("theorem soak_{index} : True := by\n  -- sim: error unknown tactic\n  trivial")
        }
        "timeout" => format!("theorem soak_{index} : True := by\n  -- sim: sleep 5000\n  trivial"),
        _ => format!("theorem soak_{index} : True := by\n  -- sim: memory 64\n  trivial"),
    };
    let timeout = if kind == "timeout" { 1.0 } else { 30.0 };
    (code, timeout)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn recycles(metrics: &str) -> String {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("lean_farm_repl_recycles_total{cause=\""))
        .map(|rest| rest.replace("\"} ", "="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    let minutes: f64 = command_line_argument("--minutes", "10")
        .parse()
        .expect("--minutes N");
    let slots: usize = command_line_argument("--slots", "2")
        .parse()
        .expect("--slots N");
    let memory_mib: u64 = command_line_argument("--memory-mib", "512")
        .parse()
        .expect("--memory-mib N");
    let every: u64 = command_line_argument("--every", "30")
        .parse()
        .expect("--every SECONDS");
    let sandbox = command_line_argument("--sandbox", "native");

    let binary = built_binary("leanfarm");
    let data = tempfile::tempdir().expect("data dir");
    let mut farm = Command::new(&binary)
        .args(["serve", "--simulate", "--addr", "127.0.0.1:0"])
        .args(["--sandbox", &sandbox, "--slots", &slots.to_string()])
        .args(["--memory-limit-mib", &memory_mib.to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start leanfarm serve (cargo build --release -p leanfarm)");
    let stderr = BufReader::new(farm.stderr.take().expect("stderr"));
    let mut lines = stderr.lines().map_while(Result::ok);
    let url = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("leanfarm: serving on ")
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        })
        .expect("the farm did not start");
    std::thread::spawn(move || lines.for_each(drop));
    println!("soak: leanfarm serve --simulate, {slots} slots, {memory_mib} MiB per REPL, {minutes} min, {} clients, stream of {KINDS:?}", 3 * slots);

    let client = reqwest::Client::new();
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let wrong_out_of_memory = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..3 * slots {
        let (client, url) = (client.clone(), url.clone());
        let (statuses, wrong, next, stop) = (
            Arc::clone(&statuses),
            Arc::clone(&wrong_out_of_memory),
            Arc::clone(&next),
            Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let kind = KINDS[index as usize % KINDS.len()];
                let (code, timeout) = snippet(kind, index);
                let body = json!({"snippets": [{"code": code}], "timeout": timeout, "wait": 120});
                let Ok(response) = client
                    .post(format!("{url}/v1/checks"))
                    .json(&body)
                    .send()
                    .await
                else {
                    continue;
                };
                let Ok(response) = response.json::<Value>().await else {
                    continue;
                };
                let verdict = &response["results"][0]["verdict"];
                let status = verdict["status"].as_str().unwrap_or("none").to_string();
                if verdict["reason"]["code"] == "out_of_memory" {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
                *statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
            }
        }));
    }

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(minutes * 60.0);
    let mut first_rss = 0;
    let mut last_rss = 0;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(every).min(end - Instant::now())).await;
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .ok()
            .map(|response| response.text());
        let metrics = match metrics {
            Some(text) => text.await.unwrap_or_default(),
            None => String::new(),
        };
        last_rss = rss_kib(farm.id());
        if first_rss == 0 {
            first_rss = last_rss;
        }
        println!(
            "  t={:>5.0}s  farm RSS {:>7} KiB  recycles: {}  verdicts: {:?}  wrong out_of_memory: {}",
            started.elapsed().as_secs_f64(),
            last_rss,
            recycles(&metrics),
            statuses.lock().expect("statuses"),
            wrong_out_of_memory.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    // SAFETY: kill(2) on our own child's pid; SIGTERM tears the sandboxes down.
    unsafe { libc::kill(farm.id() as i32, libc::SIGTERM) };
    let _ = farm.wait();
    let wrong = wrong_out_of_memory.load(Ordering::Relaxed);
    println!(
        "soak done: {} checks, farm RSS {first_rss} -> {last_rss} KiB, wrong out_of_memory verdicts: {wrong}",
        statuses.lock().expect("statuses").values().sum::<u64>()
    );
    if wrong > 0 {
        std::process::exit(1);
    }
}
