//! What a sandbox costs at start: spawn a short program and wait for it,
//! plain and under each backend that works here, and print the medians.
//!
//! cargo run --release -p leanfarm-sandbox --example spawn_bench -- [RUNS] [PROGRAM]
//!
//! PROGRAM defaults to /bin/true; it must be visible inside the sandbox
//! (system directories are mounted read-only).

use leanfarm_sandbox::{BackendKind, CommandSpec, Sandbox, SandboxConfig};
use leanfarm_testkit::sandbox::sandbox_config;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.9), at(0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let program = PathBuf::from(args.next().unwrap_or_else(|| "/bin/true".into()));
    let scratch = std::env::temp_dir().join(format!("leanfarm-spawn-bench-{}", std::process::id()));

    println!(
        "{runs} runs of {} (spawn, wait, teardown)",
        program.display()
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>12}",
        "backend", "p50 ms", "p90 ms", "p99 ms", "added p50 ms"
    );

    let mut plain = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let status = tokio::process::Command::new(&program)
            .status()
            .await
            .expect("plain spawn");
        assert!(status.success(), "{} failed", program.display());
        plain.push(started.elapsed());
    }
    let (plain_p50, p90, p99) = summary(plain);
    println!(
        "{:<10} {plain_p50:>9.2} {p90:>9.2} {p99:>9.2} {:>12}",
        "plain", "-"
    );

    for backend in [BackendKind::None, BackendKind::Native, BackendKind::Gvisor] {
        let config = SandboxConfig {
            memory_limit_bytes: 1 << 30,
            ..sandbox_config(backend, scratch.clone())
        };
        let sandbox = match Sandbox::new(config) {
            Ok(sandbox) => sandbox,
            Err(error) => {
                println!(
                    "{:<10} unavailable: {error}",
                    format!("{backend:?}").to_lowercase()
                );
                continue;
            }
        };
        let spec = CommandSpec {
            program: program.clone(),
            args: Vec::new(),
            env: Vec::new(),
        };
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let mut child = sandbox.spawn(&spec).expect("sandboxed spawn");
            let report = child.wait().await;
            assert_eq!(report.exit_code, Some(0), "{report:?}");
            samples.push(started.elapsed());
        }
        let (p50, p90, p99) = summary(samples);
        println!(
            "{:<10} {p50:>9.2} {p90:>9.2} {p99:>9.2} {:>12.2}",
            format!("{backend:?}").to_lowercase(),
            p50 - plain_p50
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
