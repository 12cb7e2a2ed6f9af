//! Tactic-session benchmark at the driver: what a session adds to a
//! tactic's REPL round-trip, how batches scale with the REPLs a session
//! holds, and what restoring a state costs by pickle against re-running.
//!
//! Run with `bench/session_driver.sh` (builds `lean-sim` first). Prints:
//! - one tactic over a bare pipe to `lean-sim repl`, and through
//!   `Session::apply` (screen, lock, sandboxed REPL, state record): p50/p99
//!   and the difference;
//! - tactics per second of `Session::apply_all` on batches of tactics that
//!   each cost `--cost` ms of Lean's time, with 1, 2 and 4 REPLs;
//! - restoring a state `--depth` tactics deep, each of `--cost` ms: by
//!   pickle and unpickle into a REPL of another session, against starting
//!   a REPL and re-running the opening and the tactics.

use leanfarm_core::PinnedStatement;
use leanfarm_driver::{Driver, OpenRequest, PoolConfig, Session, StateId, TacticOutcome};
use leanfarm_sandbox::{BackendKind, Sandbox, SandboxConfig};
use leanfarm_testkit::bench::{command_line_argument, percentile};
use leanfarm_testkit::driver::lean_sim_toolchain;
use leanfarm_testkit::lean_sim_path;
use leanfarm_testkit::sandbox::{lean_sim_mounts, sandbox_config};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const STATEMENT: &str = "theorem both (p q : Prop) (hp : p) (hq : q) : p ∧ q";

async fn bare_pipe_tactics(count: usize) -> Vec<f64> {
    let mut child = tokio::process::Command::new(lean_sim_path())
        .arg("repl")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lean-sim");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut exchange = async |request: serde_json::Value| {
        stdin
            .write_all(format!("{request}\n\n").as_bytes())
            .await
            .expect("write");
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
    exchange(serde_json::json!({ "cmd": format!("{STATEMENT} := by sorry") })).await;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        exchange(serde_json::json!({ "tactic": "constructor", "proofState": 0 })).await;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn build_driver(backend: BackendKind, scratch: &std::path::Path) -> Driver {
    let sandbox = Sandbox::new(SandboxConfig {
        memory_limit_bytes: 1 << 30,
        read_only_mounts: lean_sim_mounts(),
        ..sandbox_config(backend, scratch.to_path_buf())
    })
    .expect("sandbox");
    let toolchain = lean_sim_toolchain(lean_sim_path(), &["repl"], "bench");
    let pool = PoolConfig {
        slots: 4,
        max_repls: 8,
        acquire_timeout: Duration::from_secs(600),
        ..PoolConfig::default()
    };
    let driver = Driver::new(toolchain, pool, Arc::new(sandbox));
    driver.set_max_session_repls(16);
    driver
}

async fn open(driver: &Driver, repls: usize) -> Session {
    let mut request = OpenRequest::theorem(
        "import Mathlib",
        PinnedStatement {
            name: "both".into(),
            statement: STATEMENT.into(),
            preamble: None,
        },
    );
    request.repls = repls;
    request.tactic_timeout = Duration::from_secs(60);
    driver.open_session(request).await.expect("open").session
}

fn open_state(outcome: TacticOutcome) -> StateId {
    match outcome {
        TacticOutcome::Open { state, .. } => state,
        other => panic!("expected an open state: {other:?}"),
    }
}

#[tokio::main]
async fn main() {
    let backend: BackendKind = command_line_argument("--sandbox", "native")
        .parse()
        .expect("--sandbox native|gvisor|none");
    let count: usize = command_line_argument("--tactics", "2000")
        .parse()
        .expect("--tactics N");
    let batch: usize = command_line_argument("--batch", "64")
        .parse()
        .expect("--batch N");
    let cost: u64 = command_line_argument("--cost", "20")
        .parse()
        .expect("--cost MS");
    let depth: usize = command_line_argument("--depth", "10")
        .parse()
        .expect("--depth N");
    let scratch = tempfile::tempdir().expect("scratch");
    let driver = build_driver(backend, scratch.path());

    let bare = bare_pipe_tactics(count).await;
    let session = open(&driver, 1).await;
    open_state(session.apply(0, "constructor").await.expect("warm-up"));
    let mut applied = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        open_state(session.apply(0, "constructor").await.expect("apply"));
        applied.push(started.elapsed().as_secs_f64() * 1e6);
    }
    applied.sort_by(f64::total_cmp);
    session.close().await;
    println!(
        "tactic sessions ({count} tactics, sandbox {backend:?}, lean-sim answering instantly)"
    );
    println!(
        "  bare pipe, one tactic            p50 {:8.1} us   p99 {:8.1} us",
        percentile(&bare, 0.5),
        percentile(&bare, 0.99)
    );
    println!(
        "  Session::apply, one tactic       p50 {:8.1} us   p99 {:8.1} us",
        percentile(&applied, 0.5),
        percentile(&applied, 0.99)
    );
    // Tails of two separate runs on a shared machine do not subtract; the
    // medians do.
    println!(
        "  added by the session             p50 {:8.1} us",
        percentile(&applied, 0.5) - percentile(&bare, 0.5)
    );

    println!(
        "batches of {batch} tactics of {cost} ms each (Session::apply_all, from one widened state)"
    );
    for repls in [1, 2, 4] {
        let session = open(&driver, repls).await;
        let split = open_state(session.apply(0, "constructor").await.expect("split"));
        let holders = session.widen(split).await.expect("widen");
        assert_eq!(holders, repls, "the state is in every repl");
        let pairs: Vec<(StateId, String)> = (0..batch)
            .map(|_| (split, format!("exact hp\n-- sim: sleep {cost}")))
            .collect();
        let started = Instant::now();
        let outcomes = session.apply_all(&pairs).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert!(outcomes.iter().all(|outcome| outcome.is_ok()));
        println!(
            "  {repls} repl(s)   {:8.1} tactics/s   ({:.0} ms for the batch)",
            batch as f64 / elapsed,
            elapsed * 1000.0
        );
        session.close().await;
    }

    println!("restoring a state {depth} tactics deep, {cost} ms each");
    let session = open(&driver, 1).await;
    let mut state = 0;
    for _ in 0..depth {
        state = open_state(
            session
                .apply(state, &format!("have h : p := hp\n-- sim: sleep {cost}"))
                .await
                .expect("deepen"),
        );
    }
    let started = Instant::now();
    let bytes = session.pickle(state).await.expect("pickle");
    let pickled = started.elapsed();
    let other = open(&driver, 1).await;
    let started = Instant::now();
    other
        .unpickle(&bytes, session.origin(state).expect("origin"))
        .await
        .expect("unpickle");
    let unpickled = started.elapsed();
    // Re-running: lose the REPL, then ask for the state again.
    let lost = session.apply(state, "simp\n-- sim: crash").await;
    assert!(lost.is_err());
    let started = Instant::now();
    open_state(session.apply(state, "skip").await.expect("restored"));
    let rerun = started.elapsed();
    println!(
        "  pickle {:.1} ms ({} bytes) + unpickle {:.1} ms   against re-running {:.1} ms (start a repl, the opening, {depth} tactics)",
        pickled.as_secs_f64() * 1000.0,
        bytes.len(),
        unpickled.as_secs_f64() * 1000.0,
        rerun.as_secs_f64() * 1000.0
    );
    session.close().await;
    other.close().await;
    driver.shutdown().await;
}
