//! The worker loop against a scripted `JobQueue` and a real driver running
//! lean-sim (this test binary re-executes itself as lean-sim): a verdict is
//! completed once, a Lean error is a verdict too, a completion that fails is
//! tried again, a check the farm cannot run is released with the backoff, a
//! lost lease abandons the job, and shutdown hands running jobs back. A
//! verdict is reported through an outage of any length, survives a restart
//! in the spool without its job being checked again, and a full spool stops
//! the leasing.
//!
//! `harness = false`: `main` runs the tests, or acts as lean-sim when the
//! driver starts it with `lean-sim` as its first argument.

use leanfarm_core::{CheckRequest, CheckStatus, Verdict};
use leanfarm_driver::Driver;
use leanfarm_sandbox::{BackendKind, Sandbox, SandboxConfig};
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, WorkerOffer};
use leanfarm_testkit::driver::{lean_sim_toolchain, small_pool};
use leanfarm_testkit::sandbox::sandbox_config;
use leanfarm_worker::{JobQueue, QueueError, Reporting, Spool, WorkerConfig};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A queue that hands out the leases it was given and records what the loop did.
#[derive(Default)]
struct ScriptedQueue {
    waiting: Mutex<VecDeque<Lease>>,
    completed: Mutex<Vec<(String, Verdict)>>,
    complete_calls: AtomicUsize,
    /// Completions that fail before one succeeds.
    failing_completions: AtomicUsize,
    /// The HTTP status the failing completions are refused with (503 if 0).
    failing_status: std::sync::atomic::AtomicU16,
    released: Mutex<Vec<(String, String, Duration)>>,
    renewals: AtomicUsize,
    /// Whether a renewal finds the lease still held.
    lease_lost: AtomicBool,
    checks_started: AtomicUsize,
    checks_finished: AtomicUsize,
}

impl ScriptedQueue {
    fn with_jobs(codes: &[&str]) -> Arc<ScriptedQueue> {
        let queue = ScriptedQueue::default();
        for (index, code) in codes.iter().enumerate() {
            queue.waiting.lock().unwrap().push_back(lease(index, code));
        }
        Arc::new(queue)
    }

    fn completed(&self) -> Vec<(String, Verdict)> {
        self.completed.lock().unwrap().clone()
    }

    fn released(&self) -> Vec<(String, String, Duration)> {
        self.released.lock().unwrap().clone()
    }
}

fn lease(index: usize, code: &str) -> Lease {
    let request: CheckRequest =
        serde_json::from_value(serde_json::json!({ "code": code, "timeout_seconds": 20.0 }))
            .unwrap();
    Lease {
        job_id: format!("job-{index}"),
        lease_id: format!("lease-{index}"),
        attempt: 1,
        tenant: "default".into(),
        request,
        header_key: String::new(),
        expires_at: 0,
    }
}

/// The queue as the loop owns it: a shared handle on the script.
struct Shared(Arc<ScriptedQueue>);

impl JobQueue for Shared {
    async fn lease(
        &self,
        _worker_id: &str,
        max: usize,
        _lease: Duration,
        offer: WorkerOffer,
    ) -> Result<Vec<Lease>, QueueError> {
        assert_eq!(offer.toolchain.as_deref(), Some("lean-sim"));
        assert_eq!(offer.project.as_deref(), Some("loop-test"));
        let mut waiting = self.0.waiting.lock().unwrap();
        let count = max.min(waiting.len());
        Ok(waiting.drain(..count).collect())
    }

    async fn renew(&self, _lease: &Lease, _duration: Duration) -> Result<bool, QueueError> {
        self.0.renewals.fetch_add(1, Ordering::SeqCst);
        Ok(!self.0.lease_lost.load(Ordering::SeqCst))
    }

    async fn complete(
        &self,
        lease: &Lease,
        verdict: &Verdict,
        _started: Instant,
    ) -> Result<CompleteOutcome, QueueError> {
        self.0.complete_calls.fetch_add(1, Ordering::SeqCst);
        let failing = &self.0.failing_completions;
        if failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            let status = match self.0.failing_status.load(Ordering::SeqCst) {
                0 => 503,
                status => status,
            };
            return Err(QueueError::Refused {
                path: "/v1/worker/complete",
                status,
                body: "refused".into(),
            });
        }
        self.0
            .completed
            .lock()
            .unwrap()
            .push((lease.job_id.clone(), verdict.clone()));
        Ok(CompleteOutcome::Stored)
    }

    async fn release(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, QueueError> {
        self.0.released.lock().unwrap().push((
            lease.job_id.clone(),
            error.to_string(),
            retry_after,
        ));
        Ok(ReleaseOutcome::Requeued)
    }

    async fn wait_for_work(&self, poll_interval: Duration) {
        tokio::time::sleep(poll_interval).await;
    }

    fn check_started(&self) {
        self.0.checks_started.fetch_add(1, Ordering::SeqCst);
    }

    fn check_finished(&self) {
        self.0.checks_finished.fetch_add(1, Ordering::SeqCst);
    }
}

struct Running {
    stop: watch::Sender<bool>,
    loop_task: tokio::task::JoinHandle<()>,
    _scratch: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.loop_task)
            .await
            .expect("the loop drains and returns")
            .unwrap();
    }
}

fn config(lease: Duration, drain_deadline: Duration) -> WorkerConfig {
    WorkerConfig {
        worker_id: "loop-test".into(),
        lease,
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(1500),
        drain_deadline,
    }
}

/// Start the loop with a driver whose REPL is `repl_program` (lean-sim: this binary).
fn start(queue: &Arc<ScriptedQueue>, config: WorkerConfig, repl_program: PathBuf) -> Running {
    start_reporting(queue, config, repl_program, Reporting::default())
}

fn start_reporting(
    queue: &Arc<ScriptedQueue>,
    config: WorkerConfig,
    repl_program: PathBuf,
    reporting: Reporting,
) -> Running {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        scratch_size_bytes: 64 << 20,
        ..sandbox_config(BackendKind::None, scratch.path().to_path_buf())
    })
    .unwrap();
    let toolchain = lean_sim_toolchain(repl_program, &["lean-sim", "repl"], "loop-test");
    let pool = small_pool();
    let driver = Driver::new(toolchain, pool, Arc::new(sandbox));
    let (stop, stopped) = watch::channel(false);
    let loop_task = tokio::spawn(leanfarm_worker::run_with_reporting(
        Shared(Arc::clone(queue)),
        driver,
        config,
        reporting,
        stopped,
    ));
    Running {
        stop,
        loop_task,
        _scratch: scratch,
    }
}

fn lean_sim() -> PathBuf {
    std::env::current_exe().unwrap()
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_verdict_is_completed_once() {
    let queue = ScriptedQueue::with_jobs(&[
        "theorem one : True := trivial",
        "theorem two : True := by\n  -- sim: error unknown identifier 'x'\n  trivial",
    ]);
    let running = start(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
    );
    until("both jobs are completed", || queue.completed().len() == 2).await;
    running.stop().await;
    let mut completed = queue.completed();
    completed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(completed[0].0, "job-0");
    assert_eq!(completed[0].1.status(), CheckStatus::Valid);
    // A Lean error is a verdict, completed like any other, never released.
    assert_eq!(completed[1].0, "job-1");
    assert_eq!(completed[1].1.status(), CheckStatus::LeanError);
    assert_eq!(queue.complete_calls.load(Ordering::SeqCst), 2);
    assert!(queue.released().is_empty());
    assert_eq!(queue.checks_started.load(Ordering::SeqCst), 2);
    assert_eq!(queue.checks_finished.load(Ordering::SeqCst), 2);
}

async fn a_completion_that_fails_is_tried_again() {
    let queue = ScriptedQueue::with_jobs(&["theorem one : True := trivial"]);
    queue.failing_completions.store(2, Ordering::SeqCst);
    let running = start(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
    );
    until("the job is completed", || queue.completed().len() == 1).await;
    running.stop().await;
    assert_eq!(queue.complete_calls.load(Ordering::SeqCst), 3);
    assert_eq!(queue.completed()[0].1.status(), CheckStatus::Valid);
    assert!(queue.released().is_empty());
}

async fn a_check_the_farm_cannot_run_is_released_with_the_backoff() {
    let queue = ScriptedQueue::with_jobs(&["theorem one : True := trivial"]);
    let missing = PathBuf::from("/nonexistent/lean-sim");
    let running = start(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        missing,
    );
    until("the job is released", || queue.released().len() == 1).await;
    running.stop().await;
    let (job_id, error, retry_after) = queue.released().remove(0);
    assert_eq!(job_id, "job-0");
    assert!(!error.is_empty());
    assert_eq!(retry_after, Duration::from_millis(1500));
    assert!(queue.completed().is_empty());
}

async fn a_lost_lease_abandons_the_job() {
    let queue =
        ScriptedQueue::with_jobs(&["theorem slow : True := by\n  -- sim: sleep 3000\n  trivial"]);
    queue.lease_lost.store(true, Ordering::SeqCst);
    // Renewed every 100 ms; the first renewal finds the lease lost.
    let running = start(
        &queue,
        config(Duration::from_millis(300), Duration::from_secs(5)),
        lean_sim(),
    );
    until("the lease is renewed", || {
        queue.renewals.load(Ordering::SeqCst) >= 1
    })
    .await;
    until("the check is abandoned", || {
        queue.checks_finished.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
    assert!(
        queue.completed().is_empty(),
        "a lost lease's verdict is not sent"
    );
    assert!(queue.released().is_empty(), "a lost lease is not released");
}

async fn shutdown_hands_running_jobs_back() {
    let queue =
        ScriptedQueue::with_jobs(&["theorem slow : True := by\n  -- sim: sleep 10000\n  trivial"]);
    let running = start(
        &queue,
        config(Duration::from_secs(30), Duration::from_millis(200)),
        lean_sim(),
    );
    until("the check is running", || {
        queue.checks_started.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
    let released = queue.released();
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].0, "job-0");
    assert_eq!(released[0].1, "worker shut down");
    assert_eq!(released[0].2, Duration::ZERO);
    assert!(queue.completed().is_empty());
}

/// Reports that back off at most 20 ms, so that many failures pass quickly.
fn quick_reporting(spool: Option<Spool>) -> Reporting {
    Reporting {
        spool,
        max_backoff: Duration::from_millis(20),
        ..Reporting::default()
    }
}

/// Far more failures than the old limit of eight retries.
const LONG_OUTAGE: usize = 40;

async fn a_verdict_is_reported_through_an_outage_of_any_length() {
    let queue = ScriptedQueue::with_jobs(&["theorem one : True := trivial"]);
    queue
        .failing_completions
        .store(LONG_OUTAGE, Ordering::SeqCst);
    let running = start_reporting(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
        quick_reporting(None),
    );
    until("the job is completed", || queue.completed().len() == 1).await;
    running.stop().await;
    assert_eq!(queue.complete_calls.load(Ordering::SeqCst), LONG_OUTAGE + 1);
    assert_eq!(queue.completed()[0].1.status(), CheckStatus::Valid);
    assert_eq!(queue.checks_started.load(Ordering::SeqCst), 1);
    assert!(queue.released().is_empty());
}

async fn a_spooled_verdict_survives_a_restart_and_its_job_is_not_checked_again() {
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_dir.path(), 8).unwrap();
    let first = ScriptedQueue::with_jobs(&["theorem one : True := trivial"]);
    first
        .failing_completions
        .store(usize::MAX, Ordering::SeqCst);
    let running = start_reporting(
        &first,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
        quick_reporting(Some(spool.clone())),
    );
    until("the verdict is spooled", || {
        spool.entries().unwrap().len() == 1
    })
    .await;
    running.stop().await;
    assert!(first.completed().is_empty());
    let spooled = spool.entries().unwrap();
    assert_eq!(
        spooled.len(),
        1,
        "the spool keeps the verdict through shutdown"
    );
    assert_eq!(spooled[0].lease.job_id, "job-0");
    assert_eq!(spooled[0].verdict.status(), CheckStatus::Valid);

    // The next start: the farm leased the job again (its first lease ran
    // out), and the first report fails.
    let second = ScriptedQueue::default();
    let mut again = lease(0, "theorem one : True := trivial");
    again.lease_id = "lease-0-again".into();
    second.waiting.lock().unwrap().push_back(again);
    second.failing_completions.store(1, Ordering::SeqCst);
    let second = Arc::new(second);
    let running = start_reporting(
        &second,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
        quick_reporting(Some(Spool::open(spool_dir.path(), 8).unwrap())),
    );
    until("the spooled verdict is stored", || {
        second.completed().len() == 1
    })
    .await;
    until("the job is leased again", || {
        second.waiting.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_eq!(
        second.checks_started.load(Ordering::SeqCst),
        0,
        "a job whose verdict the worker holds is not checked again"
    );
    let completed = second.completed();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0].0, "job-0");
    assert_eq!(completed[0].1.status(), CheckStatus::Valid);
    assert!(
        spool.entries().unwrap().is_empty(),
        "a stored verdict leaves the spool"
    );
}

async fn a_full_spool_stops_the_leasing_until_it_drains() {
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_dir.path(), 1).unwrap();
    let queue = ScriptedQueue::with_jobs(&[
        "theorem one : True := trivial",
        "theorem two : True := trivial",
    ]);
    queue
        .failing_completions
        .store(usize::MAX, Ordering::SeqCst);
    let running = start_reporting(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
        quick_reporting(Some(spool.clone())),
    );
    until("a verdict is spooled", || {
        spool.entries().unwrap().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        queue.waiting.lock().unwrap().len(),
        1,
        "a worker with a full spool leased new work"
    );
    assert_eq!(queue.checks_started.load(Ordering::SeqCst), 1);
    queue.failing_completions.store(0, Ordering::SeqCst);
    until("both jobs are completed", || queue.completed().len() == 2).await;
    running.stop().await;
    assert_eq!(queue.checks_started.load(Ordering::SeqCst), 2);
    assert!(spool.entries().unwrap().is_empty());
}

async fn a_verdict_the_farm_refuses_for_good_leaves_the_spool() {
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_dir.path(), 8).unwrap();
    let queue = ScriptedQueue::with_jobs(&["theorem one : True := trivial"]);
    queue
        .failing_completions
        .store(usize::MAX, Ordering::SeqCst);
    queue.failing_status.store(422, Ordering::SeqCst);
    let running = start_reporting(
        &queue,
        config(Duration::from_secs(30), Duration::from_secs(5)),
        lean_sim(),
        quick_reporting(Some(spool.clone())),
    );
    until("the verdict is sent", || {
        queue.complete_calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert_eq!(
        queue.complete_calls.load(Ordering::SeqCst),
        1,
        "a verdict refused for good was sent again"
    );
    assert!(spool.entries().unwrap().is_empty());
}

async fn the_spool_writes_whole_entries_and_refuses_bad_ones() {
    let spool_dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Spool::open(spool_dir.path(), 0),
        Err(leanfarm_worker::SpoolError::NoCapacity)
    ));
    // A write cut short leaves a temporary file; opening the spool removes it.
    std::fs::write(spool_dir.path().join("6a6f62.tmp"), b"{\"lea").unwrap();
    let spool = Spool::open(spool_dir.path(), 4).unwrap();
    assert!(!spool_dir.path().join("6a6f62.tmp").exists());
    assert!(spool.entries().unwrap().is_empty());
    let entry = leanfarm_worker::SpooledVerdict {
        lease: lease(3, "theorem t : True := trivial"),
        verdict: Verdict::valid(),
    };
    spool.hold(&entry).unwrap();
    let mut newer = entry.clone();
    newer.lease.lease_id = "lease-3-again".into();
    spool.hold(&newer).unwrap();
    assert_eq!(spool.entries().unwrap(), vec![newer]);
    spool.forget("job-3").unwrap();
    spool.forget("job-3").unwrap();
    assert!(spool.entries().unwrap().is_empty());
    // Something that is not a spooled verdict is named in the error, and
    // set aside so that the other entries are still read.
    spool.hold(&entry).unwrap();
    std::fs::write(spool_dir.path().join("6a6f62.json"), b"not json").unwrap();
    let error = spool.entries().unwrap_err().to_string();
    assert!(spool_dir.path().join("6a6f62.unreadable").exists());
    assert_eq!(spool.entries().unwrap(), vec![entry]);
    assert!(
        error.contains("6a6f62.json") && error.contains("is not a spooled verdict"),
        "{error}"
    );
}

type Test = (
    &'static str,
    fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("lean-sim") {
        args.remove(0);
        std::process::exit(lean_sim::main_with_args(args));
    }
    let tests: [Test; 10] = [
        (
            "a_verdict_the_farm_refuses_for_good_leaves_the_spool",
            || Box::pin(a_verdict_the_farm_refuses_for_good_leaves_the_spool()),
        ),
        (
            "a_verdict_is_reported_through_an_outage_of_any_length",
            || Box::pin(a_verdict_is_reported_through_an_outage_of_any_length()),
        ),
        (
            "a_spooled_verdict_survives_a_restart_and_its_job_is_not_checked_again",
            || Box::pin(a_spooled_verdict_survives_a_restart_and_its_job_is_not_checked_again()),
        ),
        ("a_full_spool_stops_the_leasing_until_it_drains", || {
            Box::pin(a_full_spool_stops_the_leasing_until_it_drains())
        }),
        (
            "the_spool_writes_whole_entries_and_refuses_bad_ones",
            || Box::pin(the_spool_writes_whole_entries_and_refuses_bad_ones()),
        ),
        ("a_verdict_is_completed_once", || {
            Box::pin(a_verdict_is_completed_once())
        }),
        ("a_completion_that_fails_is_tried_again", || {
            Box::pin(a_completion_that_fails_is_tried_again())
        }),
        (
            "a_check_the_farm_cannot_run_is_released_with_the_backoff",
            || Box::pin(a_check_the_farm_cannot_run_is_released_with_the_backoff()),
        ),
        ("a_lost_lease_abandons_the_job", || {
            Box::pin(a_lost_lease_abandons_the_job())
        }),
        ("shutdown_hands_running_jobs_back", || {
            Box::pin(shutdown_hands_running_jobs_back())
        }),
    ];
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    let mut failed = Vec::new();
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|filter| name.contains(filter.as_str())) {
            continue;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(test())));
        drop(runtime);
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}
