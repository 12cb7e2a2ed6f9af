//! Driver benchmark: what the driver adds to a REPL round-trip, and how often
//! the warm pool finds a REPL with the snippet's header.
//!
//! Run with `bench/driver.sh` (builds `lean-sim` first). Prints:
//! - the round-trip latency of one command over a bare pipe to `lean-sim repl`;
//! - the latency of `Driver::check` on a warm REPL without the kernel replay
//!   (two commands: the snippet and the audit) and the driver's added latency
//!   per command;
//! - what the default policy's checks add on top: the screen (Lean's lexical
//!   grammar over the body) and the kernel replay (pickle, unpickle in a warm
//!   replayer, its audit: four more commands and a file copy);
//! - the header-reuse hit rate on a stream of snippets drawn from a few dozen
//!   headers with a Zipf-like popularity.

use leanfarm_core::{CheckRequest, ReplayMode};
use leanfarm_driver::{Driver, PoolConfig};
use leanfarm_sandbox::{BackendKind, Sandbox, SandboxConfig};
use leanfarm_testkit::bench::{command_line_argument, percentile};
use leanfarm_testkit::driver::lean_sim_toolchain;
use leanfarm_testkit::lean_sim_path;
use leanfarm_testkit::sandbox::{lean_sim_mounts, sandbox_config};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SNIPPET_BODY: &str = "theorem t (n : Nat) : n + 0 = n := by simp";

async fn bare_pipe_round_trips(lean_sim: &PathBuf, count: usize) -> Vec<f64> {
    let mut child = tokio::process::Command::new(lean_sim)
        .arg("repl")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lean-sim");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut exchange = async |command: String| {
        stdin.write_all(command.as_bytes()).await.expect("write");
        stdin.flush().await.expect("flush");
        let mut seen_content = false;
        loop {
            line.clear();
            stdout.read_line(&mut line).await.expect("read");
            if line.trim().is_empty() && seen_content {
                return;
            }
            seen_content |= !line.trim().is_empty();
        }
    };
    exchange(format!(
        "{}\n\n",
        serde_json::json!({ "cmd": "import Lean" })
    ))
    .await;
    let command = format!(
        "{}\n\n",
        serde_json::json!({ "cmd": SNIPPET_BODY, "env": 0 })
    );
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        exchange(command.clone()).await;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    samples
}

fn build_driver(
    lean_sim: &Path,
    backend: BackendKind,
    slots: usize,
    warm: usize,
    scratch: &std::path::Path,
) -> Driver {
    let sandbox = Sandbox::new(SandboxConfig {
        memory_limit_bytes: 1 << 30,
        read_only_mounts: lean_sim_mounts(),
        ..sandbox_config(backend, scratch.to_path_buf())
    })
    .expect("sandbox");
    let toolchain = lean_sim_toolchain(lean_sim.to_path_buf(), &["repl"], "bench");
    let pool = PoolConfig {
        slots,
        max_repls: warm,
        max_uses_per_repl: 1_000_000,
        acquire_timeout: Duration::from_secs(600),
        ..PoolConfig::default()
    };
    Driver::new(toolchain, pool, Arc::new(sandbox))
}

/// A check with a budget no benchmark run reaches, without the replay.
fn request(code: String) -> CheckRequest {
    let mut request = CheckRequest {
        timeout_seconds: 60.0,
        ..leanfarm_testkit::request(&code)
    };
    request.policy.replay = ReplayMode::Never;
    request
}

/// Timed checks of one snippet on a warm REPL, in microseconds, sorted.
async fn timed_checks(driver: &Driver, request: &CheckRequest, count: usize) -> Vec<f64> {
    driver.check(request).await.expect("warm-up check");
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let verdict = driver.check(request).await.expect("check");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(verdict.repl_reused && verdict.is_valid(), "{verdict:?}");
    }
    samples.sort_by(f64::total_cmp);
    samples
}

/// Microseconds to lex and split a body into commands, as the screen does.
fn screen_micros(body: &str, count: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..count {
        let parsed = lean_syntax::body(std::hint::black_box(body)).expect("lexes");
        std::hint::black_box(parsed);
    }
    started.elapsed().as_secs_f64() * 1e6 / count as f64
}

#[tokio::main]
async fn main() {
    let backend: BackendKind = command_line_argument("--sandbox", "native")
        .parse()
        .expect("--sandbox native|gvisor|none");
    let commands: usize = command_line_argument("--commands", "2000")
        .parse()
        .expect("--commands N");
    let headers: usize = command_line_argument("--headers", "36")
        .parse()
        .expect("--headers N");
    let stream: usize = command_line_argument("--stream", "3000")
        .parse()
        .expect("--stream N");
    let slots: usize = command_line_argument("--slots", "4")
        .parse()
        .expect("--slots N");
    let warm: usize = command_line_argument("--warm", "12")
        .parse()
        .expect("--warm N");
    let lean_sim = lean_sim_path();
    let scratch = tempfile::tempdir().expect("scratch");

    let mut bare = bare_pipe_round_trips(&lean_sim, commands).await;
    bare.sort_by(f64::total_cmp);

    let driver = build_driver(&lean_sim, backend, 1, 1, scratch.path());
    let code = format!("import Mathlib\n{SNIPPET_BODY}");
    let without_replay = request(code.clone());
    let mut with_replay = without_replay.clone();
    with_replay.policy.replay = ReplayMode::Always;
    let checks = timed_checks(&driver, &without_replay, commands).await;
    let replayed = timed_checks(&driver, &with_replay, commands).await;
    driver.shutdown().await;

    println!(
        "driver latency ({commands} samples, sandbox {backend:?}, lean-sim answering instantly)"
    );
    println!(
        "  bare pipe round-trip, 1 command     p50 {:8.1} us   p99 {:8.1} us",
        percentile(&bare, 0.5),
        percentile(&bare, 0.99)
    );
    println!("  Driver::check, replay never          p50 {:8.1} us   p99 {:8.1} us   (2 commands: snippet + audit)", percentile(&checks, 0.5), percentile(&checks, 0.99));
    let added_p50 = (percentile(&checks, 0.5) - 2.0 * percentile(&bare, 0.5)) / 2.0;
    let added_p99 = (percentile(&checks, 0.99) - 2.0 * percentile(&bare, 0.99)) / 2.0;
    println!(
        "  added by the driver, per command     p50 {added_p50:8.1} us   p99 {added_p99:8.1} us"
    );
    println!("  Driver::check, replay always (default) p50 {:6.1} us   p99 {:8.1} us   (+ pickle, unpickle, audit definition, audit in a warm replayer)", percentile(&replayed, 0.5), percentile(&replayed, 0.99));
    println!(
        "  the replay adds, per check           p50 {:8.1} us   p99 {:8.1} us   (lean-sim's replay is free; real Lean re-imports the header and re-checks every declaration)",
        percentile(&replayed, 0.5) - percentile(&checks, 0.5),
        percentile(&replayed, 0.99) - percentile(&checks, 0.99)
    );
    let long_body: String = (0..100)
        .map(|i| format!("/-- Lemma {i}. -/\n@[simp] theorem t{i} (n : Nat) (h : n > {i}) : n + 0 = n := by\n  simp [Nat.add_zero] -- \"{{x}}\"\n"))
        .collect();
    println!(
        "  the screen (lex and split), per body mean {:7.1} us for {} bytes; {:8.1} us for {} bytes",
        screen_micros(SNIPPET_BODY, 20_000),
        SNIPPET_BODY.len(),
        screen_micros(&long_body, 200),
        long_body.len()
    );

    // Header reuse on a stream drawn from `headers` headers, Zipf-like (weight 1/rank).
    let driver = build_driver(&lean_sim, backend, slots, warm, scratch.path());
    let weights: Vec<f64> = (1..=headers).map(|rank| 1.0 / rank as f64).collect();
    let total_weight: f64 = weights.iter().sum();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_unit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut codes = Vec::with_capacity(stream);
    for _ in 0..stream {
        let mut draw = next_unit() * total_weight;
        let mut rank = 0;
        while rank + 1 < headers && draw > weights[rank] {
            draw -= weights[rank];
            rank += 1;
        }
        codes.push(format!(
            "import Mathlib\nimport SimHeader.H{rank}\n{SNIPPET_BODY}"
        ));
    }
    let started = Instant::now();
    let codes = Arc::new(tokio::sync::Mutex::new(codes.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..slots {
        let (driver, codes) = (driver.clone(), Arc::clone(&codes));
        workers.push(tokio::spawn(async move {
            loop {
                let Some(code) = codes.lock().await.next() else {
                    return;
                };
                driver.check(&request(code)).await.expect("check");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let stats = driver.stats();
    driver.shutdown().await;
    let hit_rate = stats.hits as f64 / (stats.hits + stats.misses) as f64;
    println!("header reuse ({stream} snippets over {headers} headers, weight 1/rank, {slots} slots, {warm} warm repls, {:.1} s)", started.elapsed().as_secs_f64());
    println!(
        "  hit rate {:.1} %   hits {}   misses {}   evictions {}",
        hit_rate * 100.0,
        stats.hits,
        stats.misses,
        stats.evictions
    );
}
