//! The farm's metrics and their Prometheus text exposition. Every metric is
//! recorded through this module; label values are bounded (statuses,
//! reason codes, causes; tenants are the farm's own). The HELP texts are
//! the "meaning" column of the metric tables in docs/operations.md, word
//! for word (`crates/cli/tests/metrics_catalog.rs` compares them).
//!
//! Two expositions: an API replica's (`Metrics::render`) and a remote
//! worker's (`render_worker`, served by `leanfarm worker --metrics-addr`);
//! the warm pool's families are written by one function for both.

use leanfarm_core::{CheckStatus, ReasonCode};
use leanfarm_driver::PoolStats;
use leanfarm_store::QueueCounts;
use leanfarm_worker::WorkerStats;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Finite bounds of the duration histogram below its top, in seconds; the
/// longest timeout a request may ask for is always the top finite bucket.
const DURATION_BUCKETS_BELOW_TOP: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 120.0, 300.0,
];

/// A worker counts in `lean_farm_active_workers` for this long after its
/// last claim (workers refresh their row at least every 15 s while idle).
pub const ACTIVE_WORKER_WINDOW_MILLIS: i64 = 60_000;

/// Every family's HELP text, as docs/operations.md states its meaning.
const HELP: [(&str, &str); 26] = [
    (
        "lean_farm_queue_oldest_age_seconds",
        "seconds since the oldest queued job was submitted (0 when none is queued)",
    ),
    (
        "lean_farm_prove_time_to_proof_seconds",
        "from a prove job's submission to its proof (proved jobs only; counted by the replica that ended the job)",
    ),
    (
        "lean_farm_prove_jobs_total",
        "prove jobs ended, by outcome: proved, exhausted, failed, cancelled",
    ),
    (
        "lean_farm_prove_budget_exhaustions_total",
        "prove jobs stopped by a budget: candidates, tokens, cpu_seconds, wall_seconds, tenant_daily_tokens, tenant_daily_cost, rounds",
    ),
    (
        "lean_farm_model_calls_total",
        "model calls of this replica, retries included, by route",
    ),
    (
        "lean_farm_model_tokens_total",
        "model tokens by route and kind (prompt, completion), from the backends' usage",
    ),
    (
        "lean_farm_model_errors_total",
        "failed model calls by route and class: rate_limited (429), server_error (5xx), timeout, connect, refused (other 4xx), bad_reply",
    ),
    ("lean_farm_jobs_total", "jobs finished, by verdict status"),
    (
        "lean_farm_jobs_by_reason_total",
        "jobs finished with a reason, by reason code (every code of docs/verdicts.md; a valid verdict has none)",
    ),
    (
        "lean_farm_jobs_success_rate",
        "share of the verdicts this replica stored since it started that are valid (0 before the first)",
    ),
    (
        "lean_farm_tenant_jobs_total",
        "jobs finished, by tenant and verdict status (counted by the replica that stored the verdict)",
    ),
    (
        "lean_farm_jobs_duration_seconds",
        "from a worker's claim to the stored verdict; the top finite bucket is max_timeout_seconds",
    ),
    (
        "lean_farm_queue_size",
        "jobs queued, running, done, dead (state=\"dead\": the dead letters, see Dead letters)",
    ),
    (
        "lean_farm_active_workers",
        "workers of the whole fleet that claimed work in the last 60 s or hold a running job's lease, read from the store (the same on every replica)",
    ),
    (
        "lean_farm_requests_rejected_total",
        "requests refused with 429",
    ),
    (
        "lean_farm_repl_pool_hits_total",
        "snippets that found a warm REPL for their header",
    ),
    (
        "lean_farm_repl_pool_misses_total",
        "snippets that started a REPL",
    ),
    (
        "lean_farm_repl_pool_evictions_total",
        "idle REPLs evicted to make room",
    ),
    (
        "lean_farm_repl_pool_restarts_total",
        "REPLs replaced after a failure or a cap",
    ),
    ("lean_farm_repl_pool_live", "REPL processes alive"),
    (
        "lean_farm_repl_recycles_total",
        "REPLs retired before they failed, by cause: uses (max_uses_per_repl), memory (recycle_memory_fraction), processes (a snippet left one running); and out_of_memory_retry: snippets run again on a fresh REPL after running out of memory on a reused one",
    ),
    (
        "lean_farm_lean_cpu_seconds_total",
        "CPU time of the Lean REPL process trees of this process's slots (cgroup accounting), counted each time a REPL comes back from a check",
    ),
    (
        "lean_farm_worker_slots",
        "the worker's check slots, by state: busy or free",
    ),
    (
        "lean_farm_worker_repls_warm",
        "idle REPLs holding a header warm, ready for the next snippet",
    ),
    (
        "lean_farm_worker_jobs_total",
        "checks this worker finished, by verdict status",
    ),
    (
        "lean_farm_worker_ready",
        "1 once the REPL pool can take work and an API replica answered a lease, else 0",
    ),
];

/// `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str) {
    let help = HELP
        .iter()
        .find(|(listed, _)| *listed == name)
        .map(|(_, help)| *help)
        .expect("every family has a HELP text");
    let help = help.replace('\\', "\\\\");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One family with a single unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, value: impl std::fmt::Display) {
    family(out, name, kind);
    let _ = writeln!(out, "{name} {value}");
}

pub struct Metrics {
    jobs_by_status: [AtomicU64; CheckStatus::ALL.len()],
    jobs_by_reason: [AtomicU64; ReasonCode::ALL.len()],
    duration_bounds: Vec<f64>,
    durations: Mutex<Histogram>,
    requests_rejected: AtomicU64,
    /// Jobs finished per (tenant, status).
    jobs_by_tenant: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// Prove jobs: time to proof, outcomes, budget exhaustions.
    prove: Mutex<ProveMetrics>,
}

/// Upper bounds of the time-to-proof histogram, in seconds.
const TIME_TO_PROOF_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Default)]
struct ProveMetrics {
    time_to_proof_buckets: [u64; TIME_TO_PROOF_BUCKETS.len()],
    time_to_proof_count: u64,
    time_to_proof_sum: f64,
    /// Prove jobs ended, by outcome (`proved`, `exhausted`, `failed`, `cancelled`).
    outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Prove jobs stopped by a budget, by budget (`candidates`, `tokens`, ...).
    exhaustions: std::collections::BTreeMap<&'static str, u64>,
}

/// A model route's counters as the gateway reports them.
pub struct RouteTotals {
    pub route: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub errors: Vec<(String, u64)>,
}

struct Histogram {
    bucket_counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(crate::Limits::default().max_timeout_seconds)
    }
}

impl Metrics {
    /// Metrics whose duration histogram tops at `max_timeout_seconds`.
    pub fn new(max_timeout_seconds: f64) -> Metrics {
        let mut duration_bounds: Vec<f64> = DURATION_BUCKETS_BELOW_TOP
            .iter()
            .copied()
            .filter(|bound| *bound < max_timeout_seconds)
            .collect();
        duration_bounds.push(max_timeout_seconds);
        Metrics {
            jobs_by_status: Default::default(),
            jobs_by_reason: Default::default(),
            durations: Mutex::new(Histogram {
                bucket_counts: vec![0; duration_bounds.len()],
                count: 0,
                sum: 0.0,
            }),
            duration_bounds,
            requests_rejected: AtomicU64::new(0),
            jobs_by_tenant: Mutex::default(),
            prove: Mutex::default(),
        }
    }

    /// A job finished with this verdict status and reason after `seconds`
    /// from claim to result.
    pub fn job_finished(
        &self,
        tenant: &str,
        status: CheckStatus,
        reason: Option<ReasonCode>,
        seconds: f64,
    ) {
        *self
            .jobs_by_tenant
            .lock()
            .expect("metrics lock")
            .entry((tenant.to_string(), status.as_str()))
            .or_default() += 1;
        let index = CheckStatus::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is listed");
        self.jobs_by_status[index].fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = reason {
            let index = ReasonCode::ALL
                .iter()
                .position(|code| *code == reason)
                .expect("every reason code is listed");
            self.jobs_by_reason[index].fetch_add(1, Ordering::Relaxed);
        }
        let mut histogram = self.durations.lock().expect("metrics lock");
        for (bucket, bound) in self.duration_bounds.iter().enumerate() {
            if seconds <= *bound {
                histogram.bucket_counts[bucket] += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// A prove job ended with `outcome` after `seconds`; `budget` names the
    /// budget that stopped it, if one did.
    pub fn prove_finished(
        &self,
        outcome: &'static str,
        seconds: f64,
        budget: Option<&'static str>,
    ) {
        let mut prove = self.prove.lock().expect("metrics lock");
        *prove.outcomes.entry(outcome).or_default() += 1;
        if let Some(budget) = budget {
            *prove.exhaustions.entry(budget).or_default() += 1;
        }
        if outcome == "proved" {
            for (bucket, bound) in TIME_TO_PROOF_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    prove.time_to_proof_buckets[bucket] += 1;
                }
            }
            prove.time_to_proof_count += 1;
            prove.time_to_proof_sum += seconds;
        }
    }

    /// The prove jobs' and the model routes' metrics.
    pub fn render_prove(&self, routes: &[RouteTotals]) -> String {
        let mut out = String::new();
        let prove = self.prove.lock().expect("metrics lock");
        family(
            &mut out,
            "lean_farm_prove_time_to_proof_seconds",
            "histogram",
        );
        for (bucket, bound) in TIME_TO_PROOF_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "lean_farm_prove_time_to_proof_seconds_bucket{{le=\"{bound}\"}} {}",
                prove.time_to_proof_buckets[bucket]
            );
        }
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_bucket{{le=\"+Inf\"}} {}",
            prove.time_to_proof_count
        );
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_sum {}",
            prove.time_to_proof_sum
        );
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_count {}",
            prove.time_to_proof_count
        );
        family(&mut out, "lean_farm_prove_jobs_total", "counter");
        for outcome in ["proved", "exhausted", "failed", "cancelled"] {
            let count = prove.outcomes.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "lean_farm_prove_jobs_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        family(
            &mut out,
            "lean_farm_prove_budget_exhaustions_total",
            "counter",
        );
        for (budget, count) in &prove.exhaustions {
            let _ = writeln!(
                out,
                "lean_farm_prove_budget_exhaustions_total{{budget=\"{budget}\"}} {count}"
            );
        }
        family(&mut out, "lean_farm_model_calls_total", "counter");
        for totals in routes {
            let route = label(&totals.route);
            let _ = writeln!(
                out,
                "lean_farm_model_calls_total{{route=\"{route}\"}} {}",
                totals.calls
            );
        }
        family(&mut out, "lean_farm_model_tokens_total", "counter");
        for totals in routes {
            let route = label(&totals.route);
            let _ = writeln!(
                out,
                "lean_farm_model_tokens_total{{route=\"{route}\",kind=\"prompt\"}} {}",
                totals.prompt_tokens
            );
            let _ = writeln!(
                out,
                "lean_farm_model_tokens_total{{route=\"{route}\",kind=\"completion\"}} {}",
                totals.completion_tokens
            );
        }
        family(&mut out, "lean_farm_model_errors_total", "counter");
        for totals in routes {
            let route = label(&totals.route);
            for (class, count) in &totals.errors {
                let _ = writeln!(
                    out,
                    "lean_farm_model_errors_total{{route=\"{route}\",class=\"{class}\"}} {count}"
                );
            }
        }
        out
    }

    pub fn request_rejected(&self) {
        self.requests_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with gauges read at scrape time:
    /// the store's queue counts and active workers (absent when the store
    /// did not answer) and the embedded workers' pool.
    pub fn render(
        &self,
        queue: Option<QueueCounts>,
        active_workers: Option<u64>,
        pool: Option<PoolStats>,
    ) -> String {
        let mut out = String::new();
        family(&mut out, "lean_farm_jobs_total", "counter");
        let mut finished = 0;
        for (index, status) in CheckStatus::ALL.iter().enumerate() {
            let count = self.jobs_by_status[index].load(Ordering::Relaxed);
            finished += count;
            let _ = writeln!(
                out,
                "lean_farm_jobs_total{{status=\"{}\"}} {count}",
                status.as_str()
            );
        }
        family(&mut out, "lean_farm_jobs_by_reason_total", "counter");
        for (index, reason) in ReasonCode::ALL.iter().enumerate() {
            let count = self.jobs_by_reason[index].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lean_farm_jobs_by_reason_total{{reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }
        let valid = self.jobs_by_status[0].load(Ordering::Relaxed);
        let success_rate = if finished == 0 {
            0.0
        } else {
            valid as f64 / finished as f64
        };
        single(
            &mut out,
            "lean_farm_jobs_success_rate",
            "gauge",
            success_rate,
        );
        family(&mut out, "lean_farm_tenant_jobs_total", "counter");
        for ((tenant, status), count) in self.jobs_by_tenant.lock().expect("metrics lock").iter() {
            let tenant = tenant
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(
                out,
                "lean_farm_tenant_jobs_total{{tenant=\"{tenant}\",status=\"{status}\"}} {count}"
            );
        }
        family(&mut out, "lean_farm_jobs_duration_seconds", "histogram");
        {
            let histogram = self.durations.lock().expect("metrics lock");
            for (bucket, bound) in self.duration_bounds.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "lean_farm_jobs_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                    histogram.bucket_counts[bucket]
                );
            }
            let _ = writeln!(
                out,
                "lean_farm_jobs_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "lean_farm_jobs_duration_seconds_sum {}", histogram.sum);
            let _ = writeln!(
                out,
                "lean_farm_jobs_duration_seconds_count {}",
                histogram.count
            );
        }
        if let Some(queue) = queue {
            family(&mut out, "lean_farm_queue_size", "gauge");
            for (state, count) in [
                ("queued", queue.queued),
                ("running", queue.running),
                ("done", queue.done),
                ("dead", queue.dead),
            ] {
                let _ = writeln!(out, "lean_farm_queue_size{{state=\"{state}\"}} {count}");
            }
        }
        if let Some(active_workers) = active_workers {
            single(
                &mut out,
                "lean_farm_active_workers",
                "gauge",
                active_workers,
            );
        }
        single(
            &mut out,
            "lean_farm_requests_rejected_total",
            "counter",
            self.requests_rejected.load(Ordering::Relaxed),
        );
        render_pool(&mut out, pool.unwrap_or_default());
        out
    }
}

/// A label value with Prometheus' escapes.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The age of the oldest queued job, from when it was submitted.
pub(crate) fn render_queue_age(out: &mut String, oldest_queued_at: Option<i64>, now: i64) {
    let age_millis = oldest_queued_at.map_or(0, |submitted| (now - submitted).max(0));
    single(
        out,
        "lean_farm_queue_oldest_age_seconds",
        "gauge",
        age_millis as f64 / 1000.0,
    );
}

/// The warm pool's families (an API replica's embedded slots, or a worker's).
fn render_pool(out: &mut String, pool: PoolStats) {
    for (name, kind, value) in [
        ("lean_farm_repl_pool_hits_total", "counter", pool.hits),
        ("lean_farm_repl_pool_misses_total", "counter", pool.misses),
        (
            "lean_farm_repl_pool_evictions_total",
            "counter",
            pool.evictions,
        ),
        (
            "lean_farm_repl_pool_restarts_total",
            "counter",
            pool.restarts,
        ),
        ("lean_farm_repl_pool_live", "gauge", pool.live_repls),
    ] {
        single(out, name, kind, value);
    }
    family(out, "lean_farm_repl_recycles_total", "counter");
    for (cause, count) in [
        ("uses", pool.recycled_for_uses),
        ("memory", pool.recycled_for_memory),
        ("processes", pool.recycled_for_processes),
        ("out_of_memory_retry", pool.out_of_memory_retries),
    ] {
        let _ = writeln!(
            out,
            "lean_farm_repl_recycles_total{{cause=\"{cause}\"}} {count}"
        );
    }
    single(
        out,
        "lean_farm_lean_cpu_seconds_total",
        "counter",
        pool.lean_cpu_micros as f64 / 1e6,
    );
}

/// A remote worker's own exposition: its slots, warm REPLs, pool, checks
/// finished by status, Lean CPU time and readiness.
pub(crate) fn render_worker(
    slots: usize,
    pool: PoolStats,
    stats: &WorkerStats,
    ready: bool,
) -> String {
    let mut out = String::new();
    let busy = (stats.checks_running() as usize).min(slots);
    family(&mut out, "lean_farm_worker_slots", "gauge");
    let _ = writeln!(out, "lean_farm_worker_slots{{state=\"busy\"}} {busy}");
    let _ = writeln!(
        out,
        "lean_farm_worker_slots{{state=\"free\"}} {}",
        slots - busy
    );
    single(
        &mut out,
        "lean_farm_worker_repls_warm",
        "gauge",
        pool.live_repls.saturating_sub(pool.busy_repls),
    );
    family(&mut out, "lean_farm_worker_jobs_total", "counter");
    for (status, count) in stats.jobs_by_status() {
        let _ = writeln!(
            out,
            "lean_farm_worker_jobs_total{{status=\"{}\"}} {count}",
            status.as_str()
        );
    }
    single(&mut out, "lean_farm_worker_ready", "gauge", u8::from(ready));
    render_pool(&mut out, pool);
    out
}
