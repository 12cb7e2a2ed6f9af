//! Side by side: the Kimina Lean Server and Lean Farm under the same client,
//! on the same stand-in REPL cost (`-- sim: sleep COST` run by lean-sim in
//! both), with the same number of REPL slots.
//!
//! The Kimina server is started by `bench/kimina.sh` (which installs it into
//! a virtual environment and points its REPL at lean-sim) and given here by
//! `--kimina URL --kimina-pid PID`; this program starts `leanfarm serve
//! --simulate --slots SLOTS` itself. Each server is driven through the
//! Kimina API (`/api/check`, `/verify`), which both serve, and measured for:
//! - throughput against the physical limit (slots / cost) with 1-snippet
//!   requests from `slots` and from 2 x `slots` clients, and with 8-snippet
//!   batches from `slots` clients;
//! - added latency per request, p50 (end to end minus the cost), with
//!   `slots` clients of 1-snippet requests;
//! - throughput at 0 ms cost with 1-snippet requests (`slots` clients) and
//!   8-snippet batches (`slots` clients);
//! - the server process's own CPU time (user + system, from /proc; REPL
//!   processes are not counted) per snippet over the 0 ms batches.
//!
//! Run with `bench/kimina.sh [--slots 4] [--cost-ms 50] [--jobs 400]
//! [--jobs-zero 2000] [--sandbox native]`.

use leanfarm_testkit::bench::{command_line_argument, percentile};
use leanfarm_testkit::built_binary;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Check,
    Verify,
}

#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    pid: u32,
    api: Api,
}

struct Farm {
    child: std::process::Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Farm {
    /// SIGTERM, so the farm tears its sandboxes down; SIGKILL after 10 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_farm(slots: usize, sandbox: &str) -> Farm {
    let binary = built_binary("leanfarm");
    let data = tempfile::tempdir().expect("data dir");
    let mut child = Command::new(&binary)
        .args([
            "serve",
            "--simulate",
            "--addr",
            "127.0.0.1:0",
            "--sandbox",
            sandbox,
        ])
        .args(["--slots", &slots.to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{}: {error}", binary.display()));
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

/// User plus system CPU time of one process (not its children), in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1000.0 / per_second
}

fn code(cost_ms: u64, index: usize) -> String {
    format!(
        "import Mathlib\ntheorem side_{index} : True := by\n  -- sim: sleep {cost_ms}\n  trivial"
    )
}

/// One request of the snippets `first..first + size`; panics unless every
/// snippet came back without an error.
async fn request(
    client: &reqwest::Client,
    target: &Target,
    first: usize,
    size: usize,
    cost_ms: u64,
) {
    let (path, body) = match target.api {
        Api::Check => (
            "/api/check",
            json!({
                "snippets": (first..first + size)
                    .map(|i| json!({"id": i.to_string(), "code": code(cost_ms, i)}))
                    .collect::<Vec<_>>(),
                "timeout": 60,
            }),
        ),
        Api::Verify => (
            "/verify",
            json!({
                "codes": (first..first + size)
                    .map(|i| json!({"custom_id": i.to_string(), "proof": code(cost_ms, i)}))
                    .collect::<Vec<_>>(),
                "timeout": 60,
            }),
        ),
    };
    let response: Value = client
        .post(format!("{}{path}", target.url))
        .json(&body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let results = response["results"].as_array().expect("results");
    assert_eq!(results.len(), size, "{}: {response}", target.name);
    for result in results {
        let messages = result["response"]["messages"].as_array();
        // A REPL's own error reply is `{"message": ...}` in place of a command's reply.
        let failed = !result["error"].is_null()
            || !result["response"]["message"].is_null()
            || messages.is_some_and(|m| m.iter().any(|m| m["severity"] == "error"));
        assert!(!failed, "{}: {result}", target.name);
    }
}

/// `jobs` snippets in requests of `per_request` from `clients` clients;
/// returns the elapsed time and the end-to-end ms of each request.
async fn load(
    target: &Target,
    clients: usize,
    per_request: usize,
    jobs: usize,
    cost_ms: u64,
) -> (Duration, Vec<f64>) {
    static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);
    let client = reqwest::Client::new();
    let taken = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, taken, target) = (client.clone(), Arc::clone(&taken), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while taken.fetch_add(per_request, Ordering::Relaxed) < jobs {
                let first = NEXT_INDEX.fetch_add(per_request, Ordering::Relaxed);
                let sent = Instant::now();
                request(&client, &target, first, per_request, cost_ms).await;
                samples.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("client"));
    }
    samples.sort_by(f64::total_cmp);
    (started.elapsed(), samples)
}

struct Column {
    single: f64,
    single_double: f64,
    batches: f64,
    added_p50: f64,
    zero_single: f64,
    zero_batches: f64,
    cpu_per_snippet: f64,
}

async fn measure(
    target: &Target,
    slots: usize,
    cost_ms: u64,
    jobs: usize,
    jobs_zero: usize,
) -> Column {
    let limit = slots as f64 * 1000.0 / cost_ms as f64;
    // Warm every REPL first so start-up is not measured.
    load(target, 2 * slots, 1, 4 * slots, cost_ms).await;
    let rate =
        |(elapsed, _): &(Duration, Vec<f64>), jobs: usize| jobs as f64 / elapsed.as_secs_f64();
    let single = load(target, slots, 1, jobs, cost_ms).await;
    let added_p50 = percentile(&single.1, 0.5) - cost_ms as f64;
    let single_double = load(target, 2 * slots, 1, jobs, cost_ms).await;
    let batches = load(target, slots, 8, jobs, cost_ms).await;
    let zero_single = load(target, slots, 1, jobs_zero, 0).await;
    let cpu_before = cpu_ms(target.pid);
    let zero_batches = load(target, slots, 8, jobs_zero, 0).await;
    let cpu = cpu_ms(target.pid) - cpu_before;
    Column {
        single: 100.0 * rate(&single, jobs) / limit,
        single_double: 100.0 * rate(&single_double, jobs) / limit,
        batches: 100.0 * rate(&batches, jobs) / limit,
        added_p50,
        zero_single: rate(&zero_single, jobs_zero),
        zero_batches: rate(&zero_batches, jobs_zero),
        cpu_per_snippet: cpu / jobs_zero as f64,
    }
}

#[tokio::main]
async fn main() {
    let slots: usize = command_line_argument("--slots", "4")
        .parse()
        .expect("--slots N");
    let cost_ms: u64 = command_line_argument("--cost-ms", "50")
        .parse()
        .expect("--cost-ms N");
    let jobs: usize = command_line_argument("--jobs", "400")
        .parse()
        .expect("--jobs N");
    let jobs_zero: usize = command_line_argument("--jobs-zero", "2000")
        .parse()
        .expect("--jobs-zero N");
    let sandbox = command_line_argument("--sandbox", "native");
    let kimina_url = command_line_argument("--kimina", "");
    let kimina_pid: u32 = command_line_argument("--kimina-pid", "0")
        .parse()
        .expect("--kimina-pid PID");
    assert!(
        !kimina_url.is_empty() && kimina_pid != 0,
        "give the running Kimina server: --kimina URL --kimina-pid PID (bench/kimina.sh starts it)"
    );
    let farm = start_farm(slots, &sandbox);
    let targets = [
        Target {
            name: "Kimina /api/check".into(),
            url: kimina_url.clone(),
            pid: kimina_pid,
            api: Api::Check,
        },
        Target {
            name: "Kimina /verify".into(),
            url: kimina_url,
            pid: kimina_pid,
            api: Api::Verify,
        },
        Target {
            name: "Lean Farm /api/check".into(),
            url: farm.url.clone(),
            pid: farm.child.id(),
            api: Api::Check,
        },
        Target {
            name: "Lean Farm /verify".into(),
            url: farm.url.clone(),
            pid: farm.child.id(),
            api: Api::Verify,
        },
    ];
    let mut columns = Vec::new();
    for target in &targets {
        eprintln!("measuring {} ...", target.name);
        columns.push(measure(target, slots, cost_ms, jobs, jobs_zero).await);
    }
    println!(
        "side by side: {slots} REPL slots each, lean-sim at {cost_ms} ms (sleep), {jobs} snippets per run at {cost_ms} ms and {jobs_zero} at 0 ms; farm sandbox {sandbox}"
    );
    let header: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    println!("| load | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(targets.len()));
    let row = |label: String, cell: &dyn Fn(&Column) -> String| {
        let cells: Vec<String> = columns.iter().map(cell).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row(
        format!("{cost_ms} ms cost, 1-snippet requests, {slots} clients"),
        &|c| format!("{:.0} % of the physical limit", c.single),
    );
    row(
        format!(
            "{cost_ms} ms cost, 1-snippet requests, {} clients",
            2 * slots
        ),
        &|c| format!("{:.0} %", c.single_double),
    );
    row(
        format!("{cost_ms} ms cost, 8-snippet batches, {slots} clients"),
        &|c| format!("{:.0} %", c.batches),
    );
    row("added latency, p50".into(), &|c| {
        format!("{:.1} ms", c.added_p50)
    });
    row(format!("0 ms cost, 1-snippet, {slots} clients"), &|c| {
        format!("{:.0}/s", c.zero_single)
    });
    row(
        format!("0 ms cost, 8-snippet batches, {slots} clients"),
        &|c| format!("{:.0}/s", c.zero_batches),
    );
    row("server CPU per snippet, 8-snippet batches".into(), &|c| {
        format!("{:.2} ms", c.cpu_per_snippet)
    });
}
